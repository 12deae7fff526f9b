//! `tollgate-operator`: the controller and webhooks (`run`), the CRD
//! printer (`crd`), and the dry runs (`render`, `explain-pod`).
#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::info;

use tollgate_operator::context::{Context, Settings};
use tollgate_operator::crd::Sidecar;
use tollgate_operator::default_store::DefaultStore;
use tollgate_operator::leader::LeaseConfig;
use tollgate_operator::logging::{self, LogFormat};
use tollgate_operator::metrics::Metrics;
use tollgate_operator::telemetry::{self, Location};
use tollgate_operator::webhook::mutate::trace_env::{parse_ratio, SidecarTracing};
use tollgate_operator::{admin, controller, dry_run, leader, webhook};

/// jemalloc, with freed pages handed back to the system within about a
/// second by a background thread: a large policy, once deleted, no longer
/// holds the operator's memory (the same settings as the proxy's).
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

// jemalloc reads this symbol once, at its first allocation.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

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
    /// Print the proxy config the operator would write into each
    /// LlmPolicy's ConfigMap, or the validating webhook's denial (offline).
    Render(RenderArgs),
    /// Say which LlmPolicy selects a pod, whether the webhook would inject
    /// it and why not, and what the injection adds (offline).
    ExplainPod(ExplainArgs),
}

/// The operator flags a dry run must match to answer as the cluster's
/// operator does (the chart passes them to `run`).
#[derive(Args)]
struct DryRunSettings {
    /// As `run --sidecar-defaults`: the chart's `sidecar` values as JSON.
    #[arg(long, value_parser = parse_sidecar)]
    sidecar_defaults: Option<Sidecar>,
    /// As `run --default-store`: the chart's `sharedStore` as JSON.
    #[arg(long, value_parser = DefaultStore::parse)]
    default_store: Option<DefaultStore>,
}

#[derive(Args)]
struct RenderArgs {
    /// LlmPolicy manifest(s): YAML, several documents or a `kind: List`
    /// allowed; `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    file: std::path::PathBuf,
    /// Namespace of every policy; default: each policy's own, else `default`.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[command(flatten)]
    settings: DryRunSettings,
}

#[derive(Args)]
struct ExplainArgs {
    /// The Pod manifest, or a workload whose pod template to explain; `-`
    /// reads stdin.
    #[arg(short = 'f', long = "filename")]
    file: std::path::PathBuf,
    /// The LlmPolicies of the pod's namespace (e.g. `kubectl get llmp -o yaml`).
    #[arg(long)]
    policies: std::path::PathBuf,
    /// The namespace's labels, `k=v,k2=v2` (`tollgate.dev/injection=enabled`
    /// turns injection on).
    #[arg(long, default_value = "")]
    namespace_labels: String,
    /// The pod's namespace; default: its own, else `default`.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// As `run --excluded-namespace` (repeatable).
    #[arg(long = "excluded-namespace")]
    excluded_namespaces: Vec<String>,
    /// As `run --proxy-image`.
    #[arg(long)]
    proxy_image: Option<String>,
    #[command(flatten)]
    settings: DryRunSettings,
}

#[derive(Args)]
struct RunArgs {
    /// Log line format.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Defaults for the injected sidecar, as a JSON `spec.sidecar` object
    /// (e.g. `{"resources":{...},"logLevel":"info"}`); a policy's own
    /// `spec.sidecar` fields win.
    #[arg(long, env = "TOLLGATE_SIDECAR_DEFAULTS", value_parser = parse_sidecar)]
    sidecar_defaults: Option<Sidecar>,
    /// A Redis for the policies that have budgets or a cache but no store
    /// of their own, as JSON: `{"redis": {...}, "failMode": "open",
    /// "budgets": true, "cache": true}`, `redis` as in
    /// `spec.budgets.store.redis` (the chart's `sharedStore`). Each policy
    /// gets the key prefix `<keyPrefix>:<namespace>:<name>`, and the
    /// Secrets it names are looked up in the policy's namespace. A policy's
    /// own store wins.
    #[arg(long, env = "TOLLGATE_DEFAULT_STORE", value_parser = DefaultStore::parse)]
    default_store: Option<DefaultStore>,
    /// Admin listener: /metrics, /healthz, /readyz.
    #[arg(long, env = "TOLLGATE_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: SocketAddr,
    /// Proxy image injected unless a policy names its own.
    #[arg(long, env = "TOLLGATE_PROXY_IMAGE")]
    proxy_image: Option<String>,
    /// OTLP collector the injected sidecars send traces to (their
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), e.g. `http://otel-collector.observability:4317`.
    /// Unset: sidecars get no OpenTelemetry variables. (The operator's own
    /// traces follow its `OTEL_*` variables.)
    #[arg(long, env = "TOLLGATE_SIDECAR_OTLP_ENDPOINT")]
    sidecar_otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` for the sidecars' export; unset: the
    /// proxy's default, `http/protobuf`.
    #[arg(long, env = "TOLLGATE_SIDECAR_OTLP_PROTOCOL", value_parser = parse_protocol, requires = "sidecar_otlp_endpoint")]
    sidecar_otlp_protocol: Option<tollgate_otel::Protocol>,
    /// Share of new traces the sidecars sample, 0 to 1 (parent-based: an
    /// app's sampled flag is followed); unset: all.
    #[arg(long, env = "TOLLGATE_SIDECAR_TRACE_SAMPLE_RATIO", value_parser = parse_ratio, requires = "sidecar_otlp_endpoint")]
    sidecar_trace_sample_ratio: Option<f64>,
    /// A Secret, in each injected pod's namespace, whose key `headers` holds
    /// the sidecars' `OTEL_EXPORTER_OTLP_HEADERS` (collector credentials);
    /// optional for the pod. Unset: no headers.
    #[arg(
        long,
        env = "TOLLGATE_SIDECAR_OTLP_HEADERS_SECRET",
        requires = "sidecar_otlp_endpoint"
    )]
    sidecar_otlp_headers_secret: Option<String>,
    /// A ConfigMap, in each injected pod's namespace, whose key `ca.crt`
    /// holds the CA (PEM) that signed the collector's certificate, for an
    /// `https://` endpoint a private CA serves; optional for the pod.
    /// Unset: the sidecars trust the public roots.
    #[arg(
        long,
        env = "TOLLGATE_SIDECAR_OTLP_CA_CONFIGMAP",
        requires = "sidecar_otlp_endpoint"
    )]
    sidecar_otlp_ca_configmap: Option<String>,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "tollgate-system")]
    namespace: String,
    /// This replica's identity (its pod name).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// A namespace the webhooks are not called for (repeatable; the chart
    /// passes its own namespace, kube-system and `webhook.excludedNamespaces`):
    /// its pods are never injected nor reported as uninjected.
    #[arg(long = "excluded-namespace")]
    excluded_namespaces: Vec<String>,
    /// ClusterRole granting Secret reads, which the operator binds to its
    /// ServiceAccount (`--service-account`) in each namespace with policies
    /// (the chart's `<release>-secrets`). Without it the operator's own RBAC
    /// must allow reading the Secrets policies reference.
    #[arg(long, requires = "service_account")]
    secrets_role: Option<String>,
    /// The operator's ServiceAccount (in `--namespace`).
    #[arg(long)]
    service_account: Option<String>,
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
    /// it or `--tls-secret`, a self-signed certificate is generated at start
    /// (one replica only: each would make its own).
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<std::path::PathBuf>,
    /// How often the certificate files are re-read (renewals are served
    /// without a restart), in seconds.
    #[arg(long, default_value_t = 10)]
    tls_reload_seconds: u64,
    /// Serve the webhooks from this Secret in `--namespace` (`tls.crt`,
    /// `tls.key`), read through the API and watched: a renewal is served
    /// without a restart; until it exists `/readyz` fails. Its `ca.crt` is
    /// kept as the `caBundle` of `--mutating-webhook-config` and
    /// `--validating-webhook-config` when they are given.
    #[arg(long, conflicts_with = "tls_cert_file")]
    tls_secret: Option<String>,
    /// With `--tls-secret`: the operator makes that Secret (a CA and a
    /// certificate for the `--tls-san` names) and rotates both; the replica
    /// holding the Lease does, every replica serves it.
    #[arg(long, requires = "tls_secret")]
    tls_generate: bool,
    /// Validity of a CA made by `--tls-generate` (e.g. `87600h`); replaced
    /// when a third is left.
    #[arg(long, default_value = "87600h", value_parser = webhook::tls::issue::parse_duration)]
    tls_ca_validity: Duration,
    /// Validity of a certificate made by `--tls-generate`; renewed when a
    /// third is left.
    #[arg(long, default_value = "8760h", value_parser = webhook::tls::issue::parse_duration)]
    tls_cert_validity: Duration,
    /// How long a new CA is trusted before the certificate switches to it,
    /// and the old CA after the switch (time for every API server and
    /// replica to follow).
    #[arg(long, default_value = "1h", value_parser = webhook::tls::issue::parse_duration)]
    tls_overlap: Duration,
    /// DNS names or IPs of a generated certificate (repeatable).
    #[arg(
        long = "tls-san",
        default_value = "tollgate-operator.tollgate-system.svc"
    )]
    tls_sans: Vec<String>,
    /// MutatingWebhookConfiguration whose caBundle the operator keeps: the
    /// generated CA, or the `--tls-secret`'s `ca.crt`.
    #[arg(long)]
    mutating_webhook_config: Option<String>,
    /// ValidatingWebhookConfiguration whose caBundle the operator keeps, as above.
    #[arg(long)]
    validating_webhook_config: Option<String>,
}

fn parse_sidecar(s: &str) -> Result<Sidecar, String> {
    let de = &mut serde_json::Deserializer::from_str(s);
    serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

fn parse_protocol(s: &str) -> Result<tollgate_otel::Protocol, String> {
    tollgate_otel::Protocol::parse(s).map_err(|e| e.to_string())
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
        Command::Render(args) => return render(args),
        Command::ExplainPod(args) => return explain_pod(args),
    };
    tollgate_spend::redis_conn::name_connections("tollgate-operator", args.pod_name.as_deref());
    let metrics = Metrics::new();
    let location = Location {
        pod: args.pod_name.clone(),
        namespace: Some(args.namespace.clone()),
    };
    // As in the sidecar: a trace setting that cannot be used leaves tracing
    // off with an error line; it never keeps the webhooks down.
    let (traces, refused) =
        match telemetry::install(&tollgate_otel::process_env, &location, &metrics) {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e)),
        };
    logging::init(args.log_format, traces.as_ref());
    if let Some(p) = &traces {
        info!(protocol = p.protocol().as_str(), "exporting traces");
    }
    if let Some(e) = refused {
        tracing::error!(error = %e, "tracing off: the OTEL_* settings cannot be used");
    }
    let result = run(args, metrics).await;
    if let Some(p) = traces {
        // Spans ended by now (the last reconciles and reviews) still go out.
        p.shutdown(Duration::from_secs(5)).await;
    }
    result
}

/// `render`: configs on stdout; exits 1 when the webhook would deny a policy.
fn render(args: RenderArgs) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let (policies, notes) = dry_run::policies(&name, &dry_run::read(&args.file)?)?;
    for n in notes {
        eprintln!("note: {n}");
    }
    let settings = Settings {
        sidecar_defaults: args.settings.sidecar_defaults.unwrap_or_default(),
        default_store: args.settings.default_store,
        ..Settings::default()
    };
    let out = dry_run::config::render_all(&policies, args.namespace.as_deref(), &settings);
    print!("{}", out.stdout);
    for line in &out.stderr {
        eprintln!("{line}");
    }
    if out.denied {
        std::io::Write::flush(&mut std::io::stdout())?;
        std::process::exit(1);
    }
    Ok(())
}

/// `explain-pod`: the explanation on stdout; exits 0 whether or not the pod
/// would be injected.
fn explain_pod(args: ExplainArgs) -> anyhow::Result<()> {
    let pod = dry_run::pod(
        &args.file.display().to_string(),
        &dry_run::read(&args.file)?,
    )?;
    let name = args.policies.display().to_string();
    let (policies, notes) = dry_run::policies(&name, &dry_run::read(&args.policies)?)?;
    for n in notes {
        eprintln!("note: {n}");
    }
    let mut settings = Settings {
        sidecar_defaults: args.settings.sidecar_defaults.unwrap_or_default(),
        default_store: args.settings.default_store,
        excluded_namespaces: args.excluded_namespaces,
        ..Settings::default()
    };
    if let Some(image) = args.proxy_image {
        settings.proxy_image = image;
    }
    let labels = dry_run::labels(&args.namespace_labels)?;
    let out = dry_run::explain::explain(
        &pod,
        args.namespace.as_deref(),
        &labels,
        &policies,
        &settings,
    );
    print!("{}", out.text);
    Ok(())
}

/// Fills `certs` from the certificate files, the `--tls-secret` (watched,
/// and with `--tls-generate` made and rotated while `leading`), or a
/// certificate generated now.
async fn serve_certificate(
    args: &RunArgs,
    client: &kube::Client,
    certs: &Arc<webhook::tls::CertStore>,
    metrics: &Metrics,
    leading: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use webhook::tls;
    let targets = tls::ca_bundle::Targets {
        mutating: args.mutating_webhook_config.clone(),
        validating: args.validating_webhook_config.clone(),
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) {
        let pem = tls::read(cert, key)?;
        certs.set(tls::certified_key(&pem)?);
        let watch = tls::reload::Watch {
            cert: cert.clone(),
            key: key.clone(),
            interval: Duration::from_secs(args.tls_reload_seconds.max(1)),
        };
        tokio::spawn(watch.run(certs.clone(), (pem.cert, pem.key), metrics.clone()));
    } else if let Some(name) = &args.tls_secret {
        let changed = Arc::new(tokio::sync::Notify::new());
        let follow = tls::follow::Follow {
            api: kube::Api::namespaced(client.clone(), &args.namespace),
            name: name.clone(),
        };
        tokio::spawn(follow.run(certs.clone(), metrics.clone(), changed.clone()));
        let rotator = tls::rotate::Rotator {
            client: client.clone(),
            namespace: args.namespace.clone(),
            name: name.clone(),
            policy: args.tls_generate.then(|| tls::issue::Policy {
                ca_validity: args.tls_ca_validity,
                cert_validity: args.tls_cert_validity,
                overlap: args.tls_overlap,
                names: args.tls_sans.clone(),
            }),
            webhooks: targets,
            lease: args.lease_name.clone(),
            grace: Duration::from_secs(args.lease_seconds.max(1) * 4),
        };
        info!(secret = %name, generate = args.tls_generate, "webhook certificate from a Secret");
        tokio::spawn(rotator.run(leading.clone(), changed, certs.clone()));
    } else {
        let pem = tls::generate(&args.tls_sans)?;
        tls::patch_ca_bundle(
            client,
            targets.mutating.as_deref(),
            targets.validating.as_deref(),
            &pem.cert,
        )
        .await?;
        certs.set(tls::certified_key(&pem)?);
    }
    Ok(())
}

/// Runs the webhooks, and the controller while leading, until SIGTERM or SIGINT.
async fn run(args: RunArgs, metrics: Metrics) -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    // Before any listener opens or the election starts: a SIGTERM from then
    // on hands the Lease over instead of killing the process.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("SIGINT handler")?;

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    // Whether this replica leads: the election sends, the controller and
    // the certificate rotator follow.
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let certs = webhook::tls::CertStore::empty();
    serve_certificate(&args, &client, &certs, &metrics, &rx).await?;
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
    settings.excluded_namespaces = args.excluded_namespaces.clone();
    settings.default_store = args.default_store.clone();
    if let Some(d) = &settings.default_store {
        info!(url = %d.redis.url, "policies without a store of their own use the default store");
    }
    settings.sidecar_tracing = args
        .sidecar_otlp_endpoint
        .filter(|e| !e.trim().is_empty())
        .map(|endpoint| SidecarTracing {
            endpoint,
            protocol: args.sidecar_otlp_protocol,
            sample_ratio: args.sidecar_trace_sample_ratio,
            headers_secret: args
                .sidecar_otlp_headers_secret
                .clone()
                .filter(|s| !s.trim().is_empty()),
            ca_config_map: args
                .sidecar_otlp_ca_configmap
                .clone()
                .filter(|s| !s.trim().is_empty()),
        });
    if let (Some(role), Some(sa)) = (&args.secrets_role, &args.service_account) {
        settings.secret_access = Some(tollgate_operator::secrets::Access {
            role: role.clone(),
            service_account: sa.clone(),
            namespace: args.namespace.clone(),
        });
    }
    let (stores, caches) = controller::watch_caches(&client);

    let listener = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding the admin listener {}", args.admin_addr))?;
    info!(addr = %listener.local_addr()?, "admin listening");
    tokio::spawn(admin::serve(
        listener,
        metrics.clone(),
        Arc::new(stores.clone()),
        certs.clone(),
    ));

    tokio::spawn(caches);
    let ctx = Context::new(client.clone(), stores, metrics.clone(), settings);
    let tls = webhook::tls::server_config(certs)?;
    let listener = TcpListener::bind(args.webhook_addr)
        .await
        .with_context(|| format!("binding the webhook listener {}", args.webhook_addr))?;
    info!(addr = %listener.local_addr()?, "webhooks listening");
    tokio::spawn(webhook::server::serve(listener, tls, ctx.clone()));

    let lease = LeaseConfig {
        namespace: args.namespace,
        name: args.lease_name,
        identity,
        lease_duration: Duration::from_secs(args.lease_seconds),
        renew: Duration::from_secs((args.lease_seconds / 3).max(1)),
    };
    let election = tokio::spawn(leader::run(client.clone(), lease.clone(), tx));

    let shutdown = async {
        tokio::select! {
            _ = int.recv() => {},
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
