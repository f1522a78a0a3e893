//! `adbsink-operator`: parses flags, checks the CRD, serves health and metrics, optionally waits
//! for the leader Lease, and runs one controller per watched namespace until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use adbsink_crd::AnalyticDBSink;
use adbsink_operator::context::DEFAULT_SINK_UID;
use adbsink_operator::leader::{Elector, LeaseSettings};
use adbsink_operator::metrics::Metrics;
use adbsink_operator::server::{self, Health, Readiness};
use adbsink_operator::{Config, Context, controller, sweep};
use adbsink_runtime::signal::shutdown_signal;
use clap::{Parser, ValueEnum};
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Parser)]
#[command(name = "adbsink-operator", version, about)]
struct Args {
    /// Namespaces to watch, comma separated; empty watches all.
    #[arg(
        long,
        env = "ADBSINK_WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    watch_namespaces: Vec<String>,
    /// Runtime image for sinks that do not set spec.sinkTemplate.image.
    #[arg(long, env = "ADBSINK_SINK_IMAGE", default_value = adbsink_crd::DEFAULT_SINK_IMAGE)]
    sink_image: String,
    /// Address of /metrics, /healthz and /readyz. The default takes IPv4 and IPv6 (IPv4 only
    /// where the kernel has no IPv6).
    #[arg(long, env = "ADBSINK_METRICS_ADDR", default_value = "[::]:8080")]
    metrics_addr: SocketAddr,
    /// Run only while holding the Lease, so several replicas can be deployed.
    #[arg(long, env = "ADBSINK_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, env = "ADBSINK_LEASE_NAME", default_value = "adbsink-operator")]
    lease_name: String,
    /// Create a NetworkPolicy per sink allowing egress only to the brokers, the database and DNS.
    /// Without it, NetworkPolicies the operator made earlier are removed at start.
    #[arg(long, env = "ADBSINK_NETWORK_POLICIES")]
    network_policies: bool,
    /// UID and GID the sink pods run as, or `platform` to leave them to the platform
    /// (OpenShift's restricted SCC assigns its own).
    #[arg(long, env = "ADBSINK_SINK_RUN_AS_USER", default_value_t = RunAs(Some(DEFAULT_SINK_UID)))]
    sink_run_as_user: RunAs,
    #[arg(long, env = "ADBSINK_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy)]
struct RunAs(Option<i64>);

impl std::str::FromStr for RunAs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "platform" {
            return Ok(Self(None));
        }
        match s.parse::<i64>() {
            Ok(uid) if uid > 0 => Ok(Self(Some(uid))),
            _ => Err(format!("{s:?} is neither a non-root UID nor `platform`")),
        }
    }
}

impl std::fmt::Display for RunAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(uid) => write!(f, "{uid}"),
            None => f.write_str("platform"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.log_format);
    adbsink_operator::install_crypto_provider();
    match run(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("adbsink-operator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    // Listening before the first call to the API server, which can hang on an unreachable one:
    // a signal then must end the process as cleanly as later.
    let signal = shutdown_signal();
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let mut early_stop = stop.clone();

    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot configure a Kubernetes client: {e}"))?;
    let namespaces: Vec<String> = args
        .watch_namespaces
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    // Scoped like the controllers, so a namespaced install needs no cluster-wide read.
    let probe: Api<AnalyticDBSink> = match namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    tracing::info!("checking that the AnalyticDBSink CRD is installed");
    let params = ListParams::default().limit(1);
    let listed = tokio::select! {
        listed = probe.list(&params) => listed,
        _ = early_stop.wait_for(|stopped| *stopped) => return Ok(ExitCode::SUCCESS),
    };
    listed.map_err(|e| {
        format!(
            "cannot list AnalyticDBSink resources ({e}); is the CRD installed? \
             Install it with: kubectl apply --server-side -f charts/adbsink-operator/crds/"
        )
    })?;

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(Readiness::default());
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let server = tokio::spawn(server::serve(args.metrics_addr, health, stop.clone()));

    let config = Config {
        sink_image: args.sink_image.clone(),
        network_policies: args.network_policies,
        namespaces: namespaces.clone(),
        sink_run_as: args.sink_run_as_user.0,
    };
    let ctx = Arc::new(Context::new(client.clone(), config, metrics));
    let namespaces: Vec<Option<String>> = {
        let listed: Vec<Option<String>> = args
            .watch_namespaces
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(|n| Some(n.to_string()))
            .collect();
        if listed.is_empty() {
            vec![None]
        } else {
            listed
        }
    };

    let code = if args.leader_election {
        let identity = format!(
            "{}-{}",
            std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| "adbsink-operator".into()),
            std::process::id()
        );
        let elector = Elector::new(
            client,
            LeaseSettings::new(args.lease_namespace, args.lease_name, identity),
        );
        lead(&elector, ctx, namespaces, &ready, stop).await
    } else {
        run_controllers(ctx, namespaces, ready, stop).await;
        ExitCode::SUCCESS
    };
    if let Ok(Err(e)) = server.await {
        tracing::warn!(error = %e, "metrics server failed");
    }
    Ok(code)
}

/// Waits for the Lease, runs the controllers while holding it. Losing it exits non-zero so the
/// pod restarts as a standby with a clean state.
async fn lead(
    elector: &Elector,
    ctx: Arc<Context>,
    namespaces: Vec<Option<String>>,
    ready: &Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
) -> ExitCode {
    ready.standby(true);
    let acquired = elector.acquire(&mut stop).await;
    ready.standby(false);
    if !acquired {
        return ExitCode::SUCCESS;
    }
    let (lost_tx, controllers_stop) = watch::channel(false);
    let mut outer = stop.clone();
    let controllers = tokio::spawn(run_controllers(
        ctx,
        namespaces,
        ready.clone(),
        controllers_stop,
    ));
    let lost = tokio::select! {
        () = elector.hold() => true,
        _ = outer.wait_for(|stopped| *stopped) => false,
    };
    if lost {
        // Not one more write: in-flight reconciles are dropped where they stand, since another
        // replica may lead by now. The next leader redoes whatever they were doing.
        controllers.abort();
        tracing::error!("lost the leader lease; exiting");
        return ExitCode::FAILURE;
    }
    let _ = lost_tx.send(true);
    // Reconciles in flight may finish while the Lease is surely still ours (renewed at most a
    // renew period ago), then they are dropped.
    let abort = controllers.abort_handle();
    match tokio::time::timeout(SHUTDOWN_GRACE, controllers).await {
        Ok(Err(e)) if e.is_panic() => tracing::error!(error = %e, "controllers panicked"),
        Ok(_) => {}
        Err(_) => abort.abort(),
    }
    elector.release().await;
    ExitCode::SUCCESS
}

/// How long a leader stopping on SIGTERM lets in-flight reconciles finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn run_controllers(
    ctx: Arc<Context>,
    namespaces: Vec<Option<String>>,
    ready: Arc<Readiness>,
    stop: watch::Receiver<bool>,
) {
    if !ctx.config.network_policies {
        sweep::network_policies(&ctx).await;
    }
    ready.watching(namespaces.len());
    futures::future::join_all(
        namespaces
            .into_iter()
            .map(|ns| controller::run(ctx.clone(), ns, ready.clone(), stop.clone())),
    )
    .await;
}
