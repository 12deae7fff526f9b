//! `tollgate-proxy`: run, check a config, print the config schema.
#![deny(unsafe_code)] // allowed only for the allocator options below

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tollgate_config::raw::RuntimeMode;
use tollgate_config::LogFormat;
use tollgate_proxy::workers::{self, Workers};
use tollgate_proxy::Proxy;

/// jemalloc, with freed pages handed back to the system within about a
/// second by a background thread, so RSS falls again after a burst.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string pointer for jemalloc's compile-time options symbol.
#[cfg(target_os = "linux")]
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);
// SAFETY: points at an immutable static byte string.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
unsafe impl Sync for MallocConf {}

// jemalloc reads this symbol once, at its first allocation; nothing else
// defines it (the allocator is linked with prefixed `_rjem_` symbols).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

#[derive(Parser)]
#[command(
    name = "tollgate-proxy",
    version,
    about = "LLM gateway sidecar: routing, limits and observability for a pod's LLM traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Config file (a ProxyConfig YAML).
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and exit non-zero with every error found.
    Check {
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Scores a route's semantic cache on labelled prompt pairs (JSON lines
    /// of `{"a", "b", "same", "kind"}`): hit and false-hit rates per
    /// threshold, with its embedder and guard.
    Calibrate {
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
        /// The route (an alias with `cache.routes[].semantic`).
        #[arg(long)]
        route: String,
        /// The pairs file.
        #[arg(long)]
        pairs: PathBuf,
        /// More thresholds to report (repeatable).
        #[arg(long = "threshold")]
        thresholds: Vec<f32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tollgate_config::json_schema())
                    .expect("schema serializes")
            );
            ExitCode::SUCCESS
        }
        Command::Check { config } => match tollgate_config::load_file(&config) {
            Ok(c) => {
                println!("{}: valid (hash {})", config.display(), c.hash);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid", config.display());
                for fe in e.field_errors() {
                    eprintln!("  {fe}");
                }
                ExitCode::from(1)
            }
        },
        Command::Calibrate {
            config,
            route,
            pairs,
            thresholds,
        } => match calibrate(&config, &route, &pairs, &thresholds) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate-proxy calibrate: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Run { config } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tollgate-proxy: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let (config, _) = tollgate_proxy::app::read_config(&path)
        .with_context(|| format!("config {}", path.display()))?;
    init_logging(config.logging.format, &config.logging.level);
    // `CLIENT LIST` on a Redis shows each sidecar's connections by pod.
    tollgate_spend::redis_conn::name_connections("tollgate-proxy", None);
    // One worker per CPU the process may use (`workers::count`: a cgroup
    // CPU quota such as a Kubernetes `limits.cpu`, rounded down, else every
    // core of the node), shaped as `server.runtime` says.
    let count = workers::count();
    let mode = config.server.runtime;
    match mode {
        RuntimeMode::PerCore => {
            // The main thread is worker 0 (and runs admin, reload, export);
            // the others are threads of their own.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("tollgate-blocking")
                .build()
                .context("starting the runtime")?;
            let workers = Workers::spawn(count - 1).context("starting the workers")?;
            let served = rt.block_on(serve(path, &workers, count, "perCore"));
            drop(rt);
            drop(workers);
            served
        }
        RuntimeMode::WorkStealing => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(count)
                .enable_all()
                .thread_name("tollgate")
                .build()
                .context("starting the runtime")?;
            rt.block_on(serve(path, &Workers::none(), count, "workStealing"))
        }
    }
}

/// Serves until SIGTERM or SIGINT, then drains. `count` workers run the
/// data path (`workers`' threads and the caller's in `perCore`, the
/// caller's multi-thread runtime's in `workStealing`).
async fn serve(
    path: PathBuf,
    workers: &Workers,
    count: usize,
    runtime: &'static str,
) -> anyhow::Result<()> {
    // Before the listeners open: a SIGTERM that comes as soon as the
    // sidecar is ready must drain it, not kill it.
    let shutdown = ShutdownSignal::install()?;
    let proxy = Proxy::start_on(path, workers).await?;
    // Only the logger writes (stderr): a log pipeline sees nothing but log
    // lines. A harness that binds port 0 asks for the addresses on stdout
    // too (`TOLLGATE_PRINT_ADDRS=1`), one line it can wait for.
    if std::env::var_os("TOLLGATE_PRINT_ADDRS").is_some_and(|v| !v.is_empty() && v != "0") {
        println!(
            "tollgate-proxy listening data=http://{} admin=http://{}",
            proxy.data_addr(),
            proxy.admin_addr()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    tracing::info!(
        data = %proxy.data_addr(),
        admin = %proxy.admin_addr(),
        workers = count,
        runtime,
        "started"
    );
    shutdown.recv().await;
    let drained = proxy.drain().await;
    tracing::info!(drained, "stopped");
    Ok(())
}

/// SIGTERM and SIGINT, listened for from [`ShutdownSignal::install`] on.
fn calibrate(
    config: &std::path::Path,
    route: &str,
    pairs: &std::path::Path,
    thresholds: &[f32],
) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(pairs).with_context(|| format!("reading {}", pairs.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok(rt.block_on(tollgate_proxy::app::calibrate(
        config, route, &text, thresholds,
    ))?)
}

struct ShutdownSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> anyhow::Result<ShutdownSignal> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignal {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
