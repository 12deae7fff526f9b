//! `tollgate-mock`: the mock LLM provider as a process, for the Python
//! end-to-end suite and the benchmarks.
//!
//! Prints exactly one line, `tollgate-mock listening on URL`, once it
//! accepts connections, and exits cleanly on SIGTERM or SIGINT.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tollgate_tests::mock::{MockConfig, MockServer, Switches};

#[derive(Parser, Debug)]
#[command(version, about = "Mock OpenAI + Anthropic provider for Tollgate tests")]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Require this key as `Authorization: Bearer` on OpenAI endpoints.
    #[arg(long, env = "TOLLGATE_MOCK_OPENAI_KEY")]
    openai_key: Option<String>,
    /// Require this `x-api-key` on Anthropic endpoints.
    #[arg(long, env = "TOLLGATE_MOCK_ANTHROPIC_KEY")]
    anthropic_key: Option<String>,
    /// Serve HTTPS with a freshly made CA.
    #[arg(long)]
    tls: bool,
    /// Serve HTTPS and write the CA certificate to DIR/ca.pem.
    #[arg(long, value_name = "DIR")]
    tls_cert_out: Option<PathBuf>,
    /// Server-wide switch defaults as JSON, e.g. '{"chunks":20,"chunkIntervalMs":5}'.
    #[arg(long, value_name = "JSON")]
    defaults: Option<String>,
    /// Keep no record of requests (long benchmark runs).
    #[arg(long)]
    no_record: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults: Switches = match &args.defaults {
        Some(json) => serde_json::from_str(json).context("--defaults")?,
        None => Switches::default(),
    };
    let cfg = MockConfig {
        openai_key: args.openai_key,
        anthropic_key: args.anthropic_key,
        defaults,
        tls: args.tls || args.tls_cert_out.is_some(),
    };
    let server = MockServer::start_on(cfg, args.listen)
        .await
        .with_context(|| format!("starting the mock on {}", args.listen))?;
    server.set_recording(!args.no_record);
    if let (Some(dir), Some(pem)) = (&args.tls_cert_out, server.ca_pem()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("ca.pem");
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "tollgate-mock listening on {}", server.url())?;
    stdout.flush()?;
    drop(stdout);

    stop_signal().await?;
    server.shutdown().await;
    Ok(())
}

async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
