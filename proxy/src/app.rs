//! Starting and stopping a proxy: config, listeners, watcher, drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tollgate_config::{Config, LoadError};

use crate::metrics::Metrics;
use crate::reload::{watch, Reloader};
use crate::server::{bind, serve, with_state, Connections};
use crate::state::{BuildError, Runtime, Shared};
use crate::workers::Workers;
use crate::{admin, pipeline};

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] LoadError),
    #[error("{0}")]
    Runtime(#[from] BuildError),
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}

/// How long shutdown waits for budget settlements, and again for saving.
const SETTLE_ON_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(5);

/// A running proxy.
pub struct Proxy {
    shared: Arc<Shared>,
    data_addr: SocketAddr,
    admin_addr: SocketAddr,
    stop_data: CancellationToken,
    stop_rest: CancellationToken,
    /// One accept loop per worker.
    data_tasks: Vec<JoinHandle<bool>>,
    admin_task: JoinHandle<bool>,
    /// Trace export, flushed at the end of drain.
    traces: Option<tollgate_otel::Pipeline>,
}

/// Reads and validates a config file, keeping its text for reload checks.
pub fn read_config(path: &Path) -> Result<(Config, String), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let config = tollgate_config::from_yaml_str(&text)?;
    Ok((config, text))
}

impl Proxy {
    /// Loads `path`, binds the listeners and starts serving, all on the
    /// caller's runtime.
    pub async fn start(path: PathBuf) -> Result<Proxy, StartError> {
        Proxy::start_on(path, &Workers::none()).await
    }

    /// [`Proxy::start`] with the data listener served by every worker: the
    /// caller's runtime and each of `workers`' threads accept on a
    /// `SO_REUSEPORT` listener of their own. `workers` must outlive the
    /// proxy's drain.
    pub async fn start_on(path: PathBuf, workers: &Workers) -> Result<Proxy, StartError> {
        let (config, text) = read_config(&path)?;
        let runtime = Runtime::build(config, None).await?;
        let (data_listen, admin_listen) =
            (runtime.config.server.listen, runtime.config.admin.listen);
        let poll = runtime.config.upstream.credential_refresh_interval;
        let metrics = Arc::new(Metrics::new());
        let traces = start_tracing(&runtime.config.tracing, &metrics);
        let tracer = traces
            .as_ref()
            .map(|p| crate::trace::Tracer::new(p.tracer().clone(), p.sampling().clone()));
        let shared = Shared::with_tracer(runtime, metrics, tracer);
        let data = bind_data(data_listen, workers)?;
        let admin = bind(admin_listen, false, "admin.listen")?;
        let data_addr = data[0].local_addr()?;
        let admin_addr = admin.local_addr()?;

        let stop_data = CancellationToken::new();
        let stop_rest = CancellationToken::new();
        let header_timeout = {
            let s = shared.clone();
            move || s.runtime.load().config.server.header_read_timeout
        };
        let drain_timeout = shared.runtime.load().config.server.drain_timeout;
        let handles =
            std::iter::once(tokio::runtime::Handle::current()).chain(workers.extra().cloned());
        let data_tasks = data
            .into_iter()
            .zip(handles)
            .enumerate()
            .map(|(worker, (listener, rt))| {
                let worker = worker.to_string();
                let counted = Connections {
                    accepted: shared.metrics.connections.with_label_values(&[&worker]),
                    open: shared
                        .metrics
                        .connections_open
                        .with_label_values(&[&worker]),
                };
                rt.spawn(serve(
                    listener,
                    with_state(shared.clone(), pipeline::handle),
                    header_timeout.clone(),
                    stop_data.clone(),
                    drain_timeout,
                    Some(counted),
                ))
            })
            .collect();
        let admin_task = tokio::spawn(serve(
            admin,
            with_state(shared.clone(), admin::handle),
            header_timeout,
            stop_rest.clone(),
            std::time::Duration::from_secs(1),
            None,
        ));
        tokio::spawn(watch(
            Reloader::new(path, shared.clone(), &text),
            poll,
            stop_rest.clone(),
        ));
        Ok(Proxy {
            shared,
            data_addr,
            admin_addr,
            stop_data,
            stop_rest,
            data_tasks,
            admin_task,
            traces,
        })
    }

    pub fn data_addr(&self) -> SocketAddr {
        self.data_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The SIGTERM sequence: report not-ready, keep serving for
    /// `server.drainDelay` (the app beside us may still be finishing), stop
    /// accepting, wait up to `server.drainTimeout` for in-flight requests and
    /// streams. Returns true if everything finished in time.
    pub async fn drain(self) -> bool {
        self.shared.draining.store(true, Ordering::Relaxed);
        let (delay, in_flight) = {
            let rt = self.shared.runtime.load();
            (
                rt.config.server.drain_delay,
                self.shared.in_flight.load(Ordering::Relaxed),
            )
        };
        tracing::info!(delay_ms = delay.as_millis() as u64, in_flight, "draining");
        tokio::time::sleep(delay).await;
        self.stop_data.cancel();
        let mut drained = true;
        for task in self.data_tasks {
            drained &= task.await.unwrap_or(false);
        }
        if !drained {
            tracing::warn!(
                in_flight = self.shared.in_flight.load(Ordering::Relaxed),
                "drain deadline reached with requests still open; closing them"
            );
        }
        settle_budgets(&self.shared).await;
        if let Some(traces) = self.traces {
            traces.shutdown(SETTLE_ON_SHUTDOWN).await;
        }
        self.stop_rest.cancel();
        let _ = self.admin_task.await;
        drained
    }
}

/// The data listener: one for the caller's runtime, plus one per extra
/// worker on the same address (`SO_REUSEPORT`), each registered with the
/// runtime that will accept on it.
fn bind_data(addr: SocketAddr, workers: &Workers) -> std::io::Result<Vec<tokio::net::TcpListener>> {
    if workers.len() == 1 {
        return Ok(vec![bind(addr, false, "server.listen")?]);
    }
    // SO_REUSEPORT would also let us share a port another process (of the
    // same user) listens on with it, splitting its traffic with ours: a
    // bind without it fails there as an ordinary listener would.
    if addr.port() != 0 {
        crate::server::probe(addr, "server.listen")?;
    }
    let first = bind(addr, true, "server.listen")?;
    // Port 0 picks a port once; the others join it.
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for rt in workers.extra() {
        let _on = rt.enter();
        all.push(bind(addr, true, "server.listen")?);
    }
    Ok(all)
}

/// Why `tollgate-proxy calibrate` could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Calibrate(#[from] crate::cache::semantic::calibrate::CalibrateError),
}

/// `tollgate-proxy calibrate`: the route's semantic settings scored on
/// labelled pairs (JSON lines), as a Markdown report; `thresholds` adds to
/// the default ladder.
pub async fn calibrate(
    config: &Path,
    route: &str,
    pairs: &str,
    thresholds: &[f32],
) -> Result<String, CalibrateError> {
    use crate::cache::semantic::calibrate;
    let pairs = calibrate::parse_pairs(pairs)?;
    let (config, _) = read_config(config).map_err(StartError::from)?;
    let rt = Runtime::build(config, None)
        .await
        .map_err(StartError::from)?;
    let (rs, scored) = calibrate::score(&rt, route, &pairs).await?;
    let mut ladder = calibrate::thresholds(&rs);
    ladder.extend_from_slice(thresholds);
    ladder.sort_by(|a, b| a.total_cmp(b));
    ladder.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    Ok(calibrate::report(route, &rs, &scored, &ladder))
}

/// Trace export per `tracing:` and the `OTEL_*` variables, or `None` when
/// off. A setting the exporter refuses (say `OTEL_EXPORTER_OTLP_PROTOCOL=
/// http/json`) leaves tracing off with an error line; traffic is never
/// held up by tracing.
fn start_tracing(
    config: &tollgate_config::Tracing,
    metrics: &Metrics,
) -> Option<tollgate_otel::Pipeline> {
    let settings = crate::trace::settings(config);
    let counters = Arc::new(crate::trace::SpanCounters(metrics.trace_spans.clone()));
    match tollgate_otel::Pipeline::install(
        &settings,
        &tollgate_otel::process_env,
        "tollgate-proxy",
        Vec::new(),
        counters,
    ) {
        Ok(Some(p)) => {
            tracing::info!(
                protocol = p.protocol().as_str(),
                "tracing on: spans export over OTLP"
            );
            Some(p)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "tracing off: the trace exporter cannot be set up");
            None
        }
    }
}

/// Lets budget settlements of finished requests complete, then saves the
/// in-memory counters (or writes settlements queued for Redis), so a
/// restart does not forget spend.
async fn settle_budgets(shared: &Shared) {
    if !shared.settlements.wait_idle(SETTLE_ON_SHUTDOWN).await {
        tracing::warn!(
            running = shared.settlements.running(),
            "budget settlements still running at shutdown"
        );
    }
    let rt = shared.runtime.load_full();
    match tokio::time::timeout(SETTLE_ON_SHUTDOWN, rt.budget.persist()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "budget state not saved at shutdown"),
        Err(_) => tracing::error!("budget state not saved at shutdown: timed out"),
    }
}
