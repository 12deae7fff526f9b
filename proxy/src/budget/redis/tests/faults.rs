//! The Redis store when Redis fails: fail-open and fail-closed outages,
//! an unreachable server at start, a flushed script cache, reloads, and
//! calls whose replies are lost.

use super::*;

#[tokio::test]
async fn fail_open_counts_and_recovers_without_losing_settlements() {
    let Some(mut s) = Redis::start().await else {
        return;
    };
    let e = redis_engine(&s, DAILY_1C, Arc::new(SystemClock)).await;
    let h = headers(&[("x-team", "a")]);
    let a = e.admit(&req(&h)).await.unwrap();
    assert!(a.is_reserved());

    s.stop();
    a.settle("m1", &usage(1_000, 0), false).await;
    assert_eq!(pending(&e), 1, "queued while Redis is down");
    let started = Instant::now();
    let b = e.admit(&req(&h)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "bounded by the timeout"
    );
    assert!(!b.is_reserved(), "fail open: admitted, nothing reserved");
    b.settle("m1", &usage(2_000, 0), false).await;
    assert_eq!(pending(&e), 2);
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_admissions_total{outcome=\"fail_open\"}"
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &e,
            "tollgate_budget_store_errors_total{op=\"admit\",store=\"redis\"}"
        )
        .unwrap()
            >= 1.0
    );

    s.restart().await;
    wait_for("queued settlements to be written", || pending(&e) == 0).await;
    // 1M + 2M spent; a's reservation released.
    let c = e.admit(&req(&h)).await.unwrap();
    assert!(c.is_reserved(), "reconnected by itself");
    assert_eq!(
        header(&c, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.005000"
    );
    assert_eq!(metric(&e, "tollgate_budget_pending_settlements"), Some(0.0));
}

#[tokio::test]
async fn fail_closed_refuses_quickly() {
    let Some(mut s) = Redis::start().await else {
        return;
    };
    let body = format!(
        "{}{DAILY_1C}",
        store_with(&s.url(), "", ", failMode: closed")
    );
    let e = engine(&body, Arc::new(SystemClock)).await;
    let h = headers(&[("x-team", "a")]);
    e.admit(&req(&h)).await.unwrap().release().await;
    s.stop();
    let started = Instant::now();
    let err = e.admit(&req(&h)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, Refusal::StoreUnavailable { .. }), "{err}");
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(!err.to_string().contains("127.0.0.1"), "{err}");
    s.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match e.admit(&req(&h)).await {
            Ok(a) => break assert!(a.is_reserved()),
            Err(_) => assert!(Instant::now() < deadline, "never recovered"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn unreachable_from_the_start_does_not_block_startup() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let body = format!("{}{DAILY_1C}", store(&url, ""));
    let e = engine(&body, Arc::new(SystemClock)).await;
    let started = Instant::now();
    let a = e.admit(&req(&headers(&[]))).await.unwrap();
    assert!(!a.is_reserved());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn script_cache_flush_falls_back_to_loading() {
    let Some(s) = Redis::start().await else {
        return;
    };
    let e = redis_engine(&s, DAILY_1C, Arc::new(SystemClock)).await;
    let h = headers(&[]);
    e.admit(&req(&h)).await.unwrap().release().await;
    let mut c = conn(&s).await;
    let _: () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .unwrap();
    let a = e.admit(&req(&h)).await.unwrap();
    assert!(a.is_reserved());
    a.release().await;
}

#[tokio::test]
async fn password_file_and_store_reuse_on_reload() {
    let Some(s) = Redis::start_with(&["--requirepass", "s3cret"]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let body = format!(
        "{}{DAILY_1C}",
        store(&s.url(), &format!(", passwordFile: {}", pw.display()))
    );
    let cfg = budgets(&body);
    let e1 = BudgetEngine::with_clock(&cfg, &identity(), None, Arc::new(SystemClock))
        .await
        .unwrap();
    let a = e1.admit(&req(&headers(&[]))).await.unwrap();
    assert!(a.is_reserved(), "authenticated");
    let e2 = BudgetEngine::with_clock(&cfg, &identity(), Some(&e1), Arc::new(SystemClock))
        .await
        .unwrap();
    let same = |x: &BudgetEngine, y: &BudgetEngine| match (&x.inner().store, &y.inner().store) {
        (Store::Redis(p), Store::Redis(q)) => Arc::ptr_eq(p, q),
        _ => false,
    };
    assert!(same(&e1, &e2), "unchanged settings reuse the connection");
    std::fs::write(&pw, "rotated\n").unwrap();
    let e3 = BudgetEngine::with_clock(&cfg, &identity(), Some(&e2), Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(!same(&e2, &e3), "a new password makes a new connection");
    a.release().await;

    let missing = budgets(&format!(
        "{}{DAILY_1C}",
        store(&s.url(), ", passwordFile: /nonexistent/pw")
    ));
    let err = BudgetEngine::new(&missing, &identity(), None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.metric_label(), "password_file");
}

/// Blocks `s` for `secs` with `DEBUG SLEEP` on a connection of its own,
/// and returns once the server is seen busy (a PING goes unanswered for
/// 50 ms): calls sent now run only after the sleep, long after a 100 ms
/// client timeout, so their replies are lost to the proxy although Redis
/// runs them.
async fn stall(s: &Redis, secs: f64) {
    // Both connections first: a connection opened during the sleep would
    // wait it out.
    let mut sleeper = conn(s).await;
    let mut probe = conn(s).await;
    tokio::spawn(async move {
        // The client gives up on the reply (its response timeout); the
        // server sleeps anyway.
        let _: Result<(), _> = ::redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .query_async(&mut sleeper)
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ping = ::redis::cmd("PING");
        let ping = ping.query_async::<String>(&mut probe);
        if tokio::time::timeout(Duration::from_millis(50), ping)
            .await
            .is_err()
        {
            return;
        }
        assert!(Instant::now() < deadline, "redis never stalled");
    }
}

/// Every field of every reservation hash of `prefix`.
async fn reservations(s: &Redis, prefix: &str) -> Vec<(String, Vec<String>)> {
    let mut c = conn(s).await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}:resv:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    let mut out = Vec::new();
    for k in keys {
        let fields: Vec<String> = ::redis::cmd("HGETALL")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        out.push((k, fields));
    }
    out
}

/// The spend of `e`'s first budget, read from Redis directly (nano-USD).
async fn spent_usd(s: &Redis, e: &BudgetEngine) -> u64 {
    let mut c = conn(s).await;
    let cfg = &e.inner().cfg;
    let spend = tollgate_spend::read_spend(&mut c, cfg, &identity(), SystemClock.now_ms())
        .await
        .unwrap();
    spend[0].unwrap().usd
}

/// A call whose reply never reaches the proxy may still have run in Redis:
/// the settlement retried from the queue is applied once, and an admission
/// that timed out (admitted fail-open, or refused fail-closed) does not
/// leave its reservation behind.
#[tokio::test]
async fn calls_whose_replies_are_lost_apply_once() {
    let Some(s) = Redis::start_with(&["--enable-debug-command", "yes"]).await else {
        return;
    };
    let limit = "  limits: [{name: d, scope: policy, window: day, usd: 1}]\n";
    for fail_mode in ["open", "closed"] {
        let prefix = format!("lost-{fail_mode}");
        let cfg = format!(
            "  store: {{type: redis, failMode: {fail_mode}, redis: {{url: \"{}\", keyPrefix: {prefix}, timeout: 100ms}}}}\n{limit}",
            s.url()
        );
        let e = engine(&cfg, now_clock()).await;
        let h = headers(&[]);

        // A settlement that timed out after Redis ran it, then retried
        // (each retry during the stall times out too, and runs later).
        let a = e.admit(&req(&h)).await.unwrap();
        assert!(a.is_reserved());
        stall(&s, 0.7).await;
        a.settle("m1", &usage(PROMPT, MAX_OUT), false).await;
        assert_eq!(pending(&e), 1, "the timed-out settlement is queued");
        wait_for("the queue to drain", || pending(&e) == 0).await;
        assert_eq!(spent_usd(&s, &e).await, WORST, "{fail_mode}: applied once");
        let left = reservations(&s, &prefix).await;
        assert!(left.is_empty(), "{fail_mode}: {left:?}");

        // An admission that timed out after Redis reserved it.
        stall(&s, 0.7).await;
        let settled = match e.admit(&req(&h)).await {
            Ok(a) => {
                assert_eq!(fail_mode, "open");
                assert!(!a.is_reserved());
                a.settle("m1", &usage(PROMPT, MAX_OUT), false).await;
                2 * WORST
            }
            Err(Refusal::StoreUnavailable { .. }) => {
                assert_eq!(fail_mode, "closed");
                WORST
            }
            Err(other) => panic!("{other:?}"),
        };
        wait_for("the queue to drain", || pending(&e) == 0).await;
        // Redis has run every stalled call once it answers a new one.
        assert_eq!(spent_usd(&s, &e).await, settled, "{fail_mode}: spend");
        let left = reservations(&s, &prefix).await;
        assert!(
            left.is_empty(),
            "{fail_mode}: a reservation left behind: {left:?}"
        );
    }
}
