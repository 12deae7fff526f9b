//! The pass criteria, checked against the figures of a finished run, and
//! the summary table that reports both.

use std::fmt::Write as _;

use super::chaos::Reloads;
use super::config::{CACHE_MAX_BYTES, CACHE_MAX_ENTRIES};
use super::exchange::Outcome;
use super::footprint::Footprint;
use super::ledger::Ledger;
use super::store::Counters;
use super::tally::Books;
use super::traffic::{Api, Class, Kind};

/// The bounds the run is held to.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// RSS slope after warm-up, MiB per 10 minutes.
    pub rss_slope_mib: f64,
    /// A fitted rise this small passes whatever its slope: the allocator's
    /// steps, which decide the slope of a short window.
    pub rss_noise_mib: f64,
    /// Descriptors open after quiescing, above the count before traffic.
    pub fd_extra: u64,
}

/// Everything a run measured.
pub(crate) struct Figures {
    pub minutes: f64,
    pub wall_s: f64,
    pub seed: u64,
    pub rps: f64,
    pub warmup_s: f64,
    pub bounds: Bounds,
    pub books: Books,
    pub ledger: Ledger,
    /// The proxy got quiet (all answered, settled) within the deadline.
    pub quiet: bool,
    /// Redis counters of the `exact` and `cut` classes, and of any other
    /// scope value.
    pub exact: Counters,
    pub cut: Counters,
    pub others: Counters,
    pub footprint: Footprint,
    pub reloads: Reloads,
    pub redis_restarts: u64,
    pub redis_stalls: u64,
    pub alive: bool,
    /// Lines of the proxy's log that mention a panic.
    pub panics: Vec<String>,
}

pub(crate) struct Check {
    pub name: &'static str,
    pub pass: bool,
    pub detail: String,
}

fn check(name: &'static str, pass: bool, detail: String) -> Check {
    Check { name, pass, detail }
}

impl Figures {
    pub(crate) fn checks(&self) -> Vec<Check> {
        let b = &self.books;
        let l = &self.ledger;
        let f = &self.footprint;
        let sent = b.total_sent();
        let broken = b.count(|o| matches!(o, Outcome::Broken(_)));
        let mut out = vec![
            check(
                "no panic, proxy alive",
                self.alive && self.panics.is_empty(),
                format!(
                    "alive {}, {} panic line(s) in its log",
                    self.alive,
                    self.panics.len()
                ),
            ),
            check(
                "one outcome per request (client)",
                sent == b.total_outcomes(),
                format!("sent {sent}, outcomes {}", b.total_outcomes()),
            ),
            check(
                "proxy counted every request once",
                l.requests == sent && l.in_flight == 0,
                format!(
                    "tollgate_requests_total {} vs sent {sent}; in flight {}",
                    l.requests, l.in_flight
                ),
            ),
            check(
                "every request answered",
                broken == 0,
                format!("{broken} without a proper answer"),
            ),
        ];
        let rss = f.rss_slope.unwrap_or(f64::INFINITY);
        let rise = rss * f.fitted_s / 600.0;
        out.push(check(
            "RSS flat after warm-up",
            rss <= self.bounds.rss_slope_mib || rise <= self.bounds.rss_noise_mib,
            format!(
                "slope {rss:+.2} MiB/10 min over {} samples (bound {:.1}), a rise of {rise:+.2} MiB in {:.0} s (noise floor {:.1})",
                f.fitted, self.bounds.rss_slope_mib, f.fitted_s, self.bounds.rss_noise_mib
            ),
        ));
        let back = f.quiesced.map(|q| q.fds);
        out.push(check(
            "descriptors back to baseline",
            back.is_some_and(|n| n <= f.start.fds + self.bounds.fd_extra),
            format!(
                "{} before traffic, {} once quiet (bound +{}); slope under traffic {:+.1}/10 min",
                f.start.fds,
                back.map_or("?".into(), |n| n.to_string()),
                self.bounds.fd_extra,
                f.fd_slope.unwrap_or(f64::NAN),
            ),
        ));
        out.push(check(
            "exact spend in Redis == billed usage",
            self.exact.spent_tokens == b.billed.tokens as i64
                && self.exact.spent_nano_usd == b.billed.nano_usd as i64
                && b.unpriced == 0,
            format!(
                "Redis {} tokens / {} nano-USD; billed {} tokens / {} nano-USD over {} answers ({:+} tokens in Redis beyond what the proxy settled); {} answers without usage or price",
                self.exact.spent_tokens,
                self.exact.spent_nano_usd,
                b.billed.tokens,
                b.billed.nano_usd,
                b.billed.answers,
                self.exact.spent_tokens - l.tokens_exact as i64,
                b.unpriced
            ),
        ));
        out.push(check(
            "proxy settled billed answers as billed",
            l.tokens_exact == b.billed.tokens && l.settled_exact == b.billed.answers,
            format!(
                "{} settlements / {} tokens from provider usage; billed {} / {}",
                l.settled_exact, l.tokens_exact, b.billed.answers, b.billed.tokens
            ),
        ));
        let cut_sent = b.sent_of(Class::Cut);
        out.push(check(
            "cut requests charged their estimate",
            self.cut.spent_tokens == l.tokens_estimated as i64
                && (b.cut_after_events..=cut_sent).contains(&l.settled_estimated)
                && (b.cut_after_events == 0 || self.cut.spent_tokens > 0)
                && self.others == Counters::default(),
            format!(
                "Redis {} tokens vs {} estimated; {} estimated settlements for {} cut requests, {} of them after an event; other scopes {:?}",
                self.cut.spent_tokens,
                l.tokens_estimated,
                l.settled_estimated,
                cut_sent,
                b.cut_after_events,
                self.others
            ),
        ));
        let reserved = [self.exact, self.cut]
            .iter()
            .map(|c| c.reserved_nano_usd + c.reserved_tokens)
            .sum::<i64>();
        out.push(check(
            "every admission settled, nothing pending",
            l.ended() == l.admitted + l.fail_open
                && l.reservations_in_flight == 0
                && l.pending_settlements == 0
                && l.lost_settlements == 0
                && reserved == 0,
            format!(
                "{} admitted + {} fail-open; ended {} (settled {}+{} est., released {}, dropped {}); in flight {}, pending {}, lost {}; Redis reservations left {reserved}",
                l.admitted,
                l.fail_open,
                l.ended(),
                l.settled_exact,
                l.settled_estimated,
                l.released,
                l.dropped,
                l.reservations_in_flight,
                l.pending_settlements,
                l.lost_settlements
            ),
        ));
        let r = &self.reloads;
        out.push(check(
            "reloads applied / refused as written",
            r.valid > 0 && r.invalid > 0 && r.applied == r.valid && r.refused == r.invalid,
            format!(
                "valid {} (applied {}), invalid {} (refused {}){}",
                r.valid,
                r.applied,
                r.invalid,
                r.refused,
                r.problems
                    .first()
                    .map_or(String::new(), |p| format!("; first problem: {p}"))
            ),
        ));
        out.push(check(
            "redis restarted",
            self.redis_restarts > 0,
            format!(
                "{} restart(s), {} fail-open admissions",
                self.redis_restarts, l.fail_open
            ),
        ));
        out.push(check(
            "cache filled past its bounds, stayed bounded",
            l.cache_stored > CACHE_MAX_ENTRIES
                && l.cache_entries <= CACHE_MAX_ENTRIES
                && l.cache_bytes <= CACHE_MAX_BYTES
                && l.cache_hits > 0,
            format!(
                "{} stored, {} hits; now {} entries (max {CACHE_MAX_ENTRIES}), {} bytes (max {CACHE_MAX_BYTES})",
                l.cache_stored, l.cache_hits, l.cache_entries, l.cache_bytes
            ),
        ));
        out.push(check(
            "proxy quiet after traffic",
            self.quiet,
            "all answered, settled and flushed before the deadline".into(),
        ));
        out
    }

    /// The summary table.
    pub(crate) fn render(&self, checks: &[Check]) -> String {
        let mut s = String::new();
        let b = &self.books;
        let _ = writeln!(
            s,
            "tollgate-soak: {:.1} min at {} req/s (seed {}), wall {:.0} s, warm-up {:.0} s",
            self.minutes, self.rps, self.seed, self.wall_s, self.warmup_s
        );
        let _ = writeln!(s, "\nrequests by kind");
        let cols = [
            "sent", "ok", "hit", "429", "5xx", "4xx", "strm-err", "cut", "gave-up", "broken",
        ];
        let _ = write!(s, "  {:<16}", "kind");
        for c in cols {
            let _ = write!(s, "{c:>9}");
        }
        let _ = writeln!(s);
        let row = |s: &mut String, name: &str, of: &dyn Fn(&Kind) -> bool| {
            let n = |f: &dyn Fn(&Outcome) -> bool| -> u64 {
                b.outcomes
                    .iter()
                    .filter(|((k, o), _)| of(k) && f(o))
                    .map(|(_, n)| n)
                    .sum()
            };
            let sent: u64 = b.sent.iter().filter(|(k, _)| of(k)).map(|(_, n)| n).sum();
            let cells = [
                sent,
                n(&|o| *o == Outcome::Complete),
                n(&|o| *o == Outcome::CacheHit),
                n(&|o| *o == Outcome::Status(429)),
                n(&|o| matches!(o, Outcome::Status(500..))),
                n(&|o| matches!(o, Outcome::Status(c) if (400..500).contains(c) && *c != 429)),
                n(&|o| *o == Outcome::StreamError),
                n(&|o| *o == Outcome::ClientCut),
                n(&|o| *o == Outcome::GaveUp),
                n(&|o| matches!(o, Outcome::Broken(_))),
            ];
            let _ = write!(s, "  {name:<16}");
            for c in cells {
                let _ = write!(s, "{c:>9}");
            }
            let _ = writeln!(s);
        };
        for k in Kind::ALL {
            row(&mut s, k.name(), &|x| *x == k);
        }
        row(&mut s, "all", &|_| true);
        let _ = write!(s, "  by API (whole/stream):");
        for api in Api::ALL {
            let n = |stream| b.sent_by_api.get(&(api, stream)).copied().unwrap_or(0);
            let _ = write!(s, "  {} {}/{}", api.name(), n(false), n(true));
        }
        let _ = writeln!(s);
        let broken: Vec<_> = b
            .outcomes
            .iter()
            .filter_map(|((k, o), n)| match o {
                Outcome::Broken(why) => Some(format!("{} {why} ×{n}", k.name())),
                _ => None,
            })
            .collect();
        if !broken.is_empty() {
            let _ = writeln!(s, "  broken: {}", broken.join("; "));
        }

        let f = &self.footprint;
        let fmt = |x: Option<super::procs::Sample>| {
            x.map_or("?".into(), |x| {
                format!("{:.1} MiB / {} fds", x.rss_mib(), x.fds)
            })
        };
        let _ = writeln!(s, "\nproxy footprint (RSS / open fds)");
        let _ = writeln!(s, "  before traffic   {}", fmt(Some(f.start)));
        let _ = writeln!(s, "  after warm-up    {}", fmt(f.after_warmup));
        let _ = writeln!(s, "  end of traffic   {}", fmt(f.end));
        let _ = writeln!(s, "  quiesced         {}", fmt(f.quiesced));
        let _ = writeln!(
            s,
            "  slopes after warm-up: RSS {:+.2} MiB/10 min, fds {:+.1}/10 min ({} samples)",
            f.rss_slope.unwrap_or(f64::NAN),
            f.fd_slope.unwrap_or(f64::NAN),
            f.fitted
        );

        let l = &self.ledger;
        let _ = writeln!(s, "\nbudget (Redis vs billed)");
        let _ = writeln!(
            s,
            "  exact: Redis {} tokens, {} nano-USD; billed {} tokens, {} nano-USD ({} answers)",
            self.exact.spent_tokens,
            self.exact.spent_nano_usd,
            b.billed.tokens,
            b.billed.nano_usd,
            b.billed.answers
        );
        let _ = writeln!(
            s,
            "  cut:   Redis {} tokens, {} nano-USD; proxy estimated {} tokens in {} settlements",
            self.cut.spent_tokens, self.cut.spent_nano_usd, l.tokens_estimated, l.settled_estimated
        );
        let _ = writeln!(
            s,
            "  proxy spend metric ${:.6}; Redis total ${:.6}; store errors {}; fail-open admissions {}",
            l.spend_usd,
            (self.exact.spent_nano_usd + self.cut.spent_nano_usd) as f64 / 1e9,
            l.store_errors,
            l.fail_open
        );
        let r = &self.reloads;
        let _ = writeln!(
            s,
            "\nchaos: reloads ok {}/{} valid, refused {}/{} invalid; redis restarts {}, stalls {}; stream disconnects seen by the proxy {}",
            r.applied, r.valid, r.refused, r.invalid, self.redis_restarts, self.redis_stalls, l.stream_disconnects
        );
        for p in &r.problems {
            let _ = writeln!(s, "  reload problem: {p}");
        }
        for p in &self.panics {
            let _ = writeln!(s, "  panic: {p}");
        }

        let _ = writeln!(s, "\ncriteria");
        for c in checks {
            let _ = writeln!(
                s,
                "  {} {:<44} {}",
                if c.pass { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let passed = checks.iter().all(|c| c.pass);
        let _ = writeln!(
            s,
            "\n{}",
            if passed { "SOAK PASSED" } else { "SOAK FAILED" }
        );
        s
    }
}
