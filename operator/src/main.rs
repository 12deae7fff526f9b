//! `tollgate-operator`: the controller and webhooks (`run`), and the CRD
//! printer (`crd`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::info;

use tollgate_operator::context::{Context, Settings};
use tollgate_operator::crd::Sidecar;
use tollgate_operator::leader::LeaseConfig;
use tollgate_operator::metrics::Metrics;
use tollgate_operator::{admin, controller, leader, webhook};

#[derive(Parser)]
#[command(name = "tollgate-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the LlmPolicy CustomResourceDefinition (YAML).
    Crd,
    /// Run the controller (while leading) and the webhooks.
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct RunArgs {
    /// Defaults for the injected sidecar, as a JSON `spec.sidecar` object
    /// (e.g. `{"resources":{...},"logLevel":"info"}`); a policy's own
    /// `spec.sidecar` fields win.
    #[arg(long, env = "TOLLGATE_SIDECAR_DEFAULTS", value_parser = parse_sidecar)]
    sidecar_defaults: Option<Sidecar>,
    /// Admin listener: /metrics, /healthz, /readyz.
    #[arg(long, env = "TOLLGATE_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: SocketAddr,
    /// Proxy image injected unless a policy names its own.
    #[arg(long, env = "TOLLGATE_PROXY_IMAGE")]
    proxy_image: Option<String>,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "tollgate-system")]
    namespace: String,
    /// This replica's identity (its pod name).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "tollgate-operator")]
    lease_name: String,
    /// Lease duration in seconds; renewed every third of it.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Webhook listener (HTTPS): /mutate and /validate.
    #[arg(long, env = "TOLLGATE_WEBHOOK_ADDR", default_value = "0.0.0.0:8443")]
    webhook_addr: SocketAddr,
    /// Webhook certificate (PEM), e.g. from a cert-manager Secret. Without
    /// it a self-signed certificate is generated at start.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<std::path::PathBuf>,
    /// How often the certificate files are re-read (renewals are served
    /// without a restart), in seconds.
    #[arg(long, default_value_t = 10)]
    tls_reload_seconds: u64,
    /// DNS names or IPs of a generated certificate (repeatable).
    #[arg(
        long = "tls-san",
        default_value = "tollgate-operator.tollgate-system.svc"
    )]
    tls_sans: Vec<String>,
    /// MutatingWebhookConfiguration whose caBundle gets a generated certificate.
    #[arg(long)]
    mutating_webhook_config: Option<String>,
    /// ValidatingWebhookConfiguration whose caBundle gets a generated certificate.
    #[arg(long)]
    validating_webhook_config: Option<String>,
}

fn parse_sidecar(s: &str) -> Result<Sidecar, String> {
    let de = &mut serde_json::Deserializer::from_str(s);
    serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Crd => {
            print!("{}", tollgate_operator::crd_yaml());
            return Ok(());
        }
        Command::Run(args) => *args,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let identity = args
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("tollgate-operator-{}", std::process::id()));
    let mut settings = Settings {
        instance: identity.clone(),
        ..Settings::default()
    };
    if let Some(image) = args.proxy_image {
        settings.proxy_image = image;
    }
    if let Some(d) = args.sidecar_defaults {
        settings.sidecar_defaults = d;
    }
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));

    let listener = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding the admin listener {}", args.admin_addr))?;
    info!(addr = %listener.local_addr()?, "admin listening");
    tokio::spawn(admin::serve(listener, metrics.clone(), ready.clone()));

    let (stores, caches) = controller::watch_caches(&client);
    tokio::spawn(caches);
    let ctx = Context::new(client.clone(), stores, metrics.clone(), settings);
    {
        let ctx = ctx.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _ = ctx.stores.policies.wait_until_ready().await;
            let _ = ctx.stores.namespaces.wait_until_ready().await;
            ready.store(true, Ordering::Relaxed);
            info!("watch caches synced");
        });
    }

    let pem = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(c), Some(k)) => webhook::tls::read(c, k)?,
        _ => {
            let pem = webhook::tls::generate(&args.tls_sans)?;
            webhook::tls::patch_ca_bundle(
                &client,
                args.mutating_webhook_config.as_deref(),
                args.validating_webhook_config.as_deref(),
                &pem.cert,
            )
            .await?;
            pem
        }
    };
    let store = webhook::tls::CertStore::new(webhook::tls::certified_key(&pem)?);
    if let (Some(cert), Some(key)) = (args.tls_cert_file, args.tls_key_file) {
        let watch = webhook::tls::reload::Watch {
            cert,
            key,
            interval: Duration::from_secs(args.tls_reload_seconds.max(1)),
        };
        tokio::spawn(watch.run(store.clone(), (pem.cert, pem.key), metrics.clone()));
    }
    let tls = webhook::tls::server_config(store)?;
    let listener = TcpListener::bind(args.webhook_addr)
        .await
        .with_context(|| format!("binding the webhook listener {}", args.webhook_addr))?;
    info!(addr = %listener.local_addr()?, "webhooks listening");
    tokio::spawn(webhook::server::serve(listener, tls, ctx.clone()));

    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let lease = LeaseConfig {
        namespace: args.namespace,
        name: args.lease_name,
        identity,
        lease_duration: Duration::from_secs(args.lease_seconds),
        renew: Duration::from_secs((args.lease_seconds / 3).max(1)),
    };
    let election = tokio::spawn(leader::run(client.clone(), lease.clone(), tx));

    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    tokio::pin!(shutdown);
    loop {
        // Wait to lead, then run the controller until leadership is lost.
        while !*rx.borrow_and_update() {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = rx.changed() => r?,
            }
        }
        metrics.leader.set(1);
        let mut task = tokio::spawn(controller::run(ctx.clone()));
        let shutting_down = loop {
            tokio::select! {
                _ = &mut shutdown => break true,
                _ = &mut task => break false,
                r = rx.changed() => {
                    r?;
                    if !*rx.borrow_and_update() { break false; }
                }
            }
        };
        task.abort();
        // Wait for the abort, so no reconcile sets a gauge after the reset.
        let _ = task.await;
        metrics.leader.set(0);
        metrics.clear_leader_gauges();
        info!("stopped leading");
        if shutting_down {
            // Hand over now rather than after the lease expires.
            election.abort();
            leader::release(&client, &lease).await;
            return Ok(());
        }
    }
}
