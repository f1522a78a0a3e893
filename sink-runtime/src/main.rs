//! `adbsink-runtime`: the sink process. `run` in a pod (configured by the operator through the
//! environment), `standalone <manifest>` anywhere else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use adbsink_runtime::records::ConfigRecord;
use adbsink_runtime::signal::shutdown_signal;
use adbsink_runtime::sink::managed_consumer_property;
use adbsink_runtime::standalone::{self, Credentials};
use adbsink_runtime::{Error, Secret, sink};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Parser)]
#[command(
    version,
    about = "Streams a Kafka topic's JSON messages into an AnalyticDB table"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(
        long,
        env = "ADBSINK_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    log_format: LogFormat,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ADBSINK_HTTP_ADDR", global = true)]
    http_addr: Option<SocketAddr>,
    /// Extra librdkafka consumer property, `key=value`; may repeat. Replaces adbsink's own
    /// fetch tuning; the properties the sink owns (group, offsets) are refused.
    #[arg(long = "kafka-property", value_parser = key_value, global = true)]
    kafka_properties: Vec<(String, String)>,
    #[arg(
        long,
        env = "ADBSINK_DB_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    db_password: Option<String>,
    #[arg(long, env = "ADBSINK_SASL_USERNAME", global = true)]
    sasl_username: Option<String>,
    #[arg(
        long,
        env = "ADBSINK_SASL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    sasl_password: Option<String>,
    /// PEM file of the Kafka brokers' CA.
    #[arg(long, env = "ADBSINK_KAFKA_CA_FILE", global = true)]
    kafka_ca_file: Option<String>,
    /// PEM file of the database's CA.
    #[arg(long, env = "ADBSINK_DB_CA_FILE", global = true)]
    db_ca_file: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run in a sink pod: the operator passes the configuration in the environment.
    Run {
        /// The effective configuration, a JSON config record.
        #[arg(long, env = "ADBSINK_CONFIG", hide_env_values = true)]
        config: String,
        /// Consumer tasks in this process.
        #[arg(long, env = "ADBSINK_THREADS", value_parser = threads)]
        threads: u32,
        /// Task id prefix, the pod name.
        #[arg(long, env = "ADBSINK_TASK_PREFIX", default_value = "sink")]
        task_prefix: String,
        #[arg(long, env = "ADBSINK_DB_USERNAME")]
        db_username: Option<String>,
    },
    /// Run a sink from an AnalyticDBSink manifest, creating or checking its topics and group.
    Standalone {
        manifest: PathBuf,
        /// File holding the database password (instead of ADBSINK_DB_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Consumer tasks (default: spec.source.concurrency).
        #[arg(long, value_parser = threads)]
        threads: Option<u32>,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not key=value"))?;
    if let Some(why) = managed_consumer_property(key) {
        return Err(format!(
            "{key} is set by adbsink and cannot be changed: {why}"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

fn threads(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("adbsink-runtime: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // A provisioning call interrupted by a signal may still be inside librdkafka on a blocking
    // thread, for up to its 15 s timeout; the process is leaving, so it is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adbsink-runtime: {e}");
            match e {
                Error::Spec(_) | Error::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    // Listening from the start: standalone provisioning can wait on a broker for a while, and a
    // signal then must stop the process as cleanly as one that arrives later.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut credentials = Credentials {
        password: cli.db_password.map(Secret::new),
        sasl_username: cli.sasl_username,
        sasl_password: cli.sasl_password.map(Secret::new),
        kafka_ca_file: cli.kafka_ca_file,
        db_ca_file: cli.db_ca_file,
    };
    let mut config = match cli.command {
        Command::Standalone {
            manifest,
            password_file,
            threads,
        } => {
            if let Some(file) = password_file {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", file.display())))?;
                credentials.password = Some(Secret::new(text.trim_end_matches(['\n', '\r'])));
            }
            let mut config = standalone::load(&manifest, credentials)?;
            if let Some(threads) = threads {
                config.threads = threads;
            }
            tracing::info!(sink = %config.name, "provisioning the internal topics and the group");
            tokio::select! {
                provisioned = standalone::provision(&config) => provisioned?,
                () = &mut shutdown => {
                    tracing::info!("stopping: interrupted before the sink started");
                    return Ok(());
                }
            }
            config
        }
        Command::Run {
            config,
            threads,
            task_prefix,
            db_username,
        } => {
            let record: ConfigRecord = serde_json::from_str(&config).map_err(|e| {
                Error::Config(format!("ADBSINK_CONFIG is not a config record: {e}"))
            })?;
            let mut sink = adbsink_crd::AnalyticDBSink::new(&record.sink, record.spec);
            if let Some(username) = db_username {
                sink.spec.destination.username = username;
            }
            let mut config = standalone::config_from(&sink, credentials)?;
            config.threads = threads;
            config.task_prefix = task_prefix;
            config
        }
    };
    config.http_addr = cli.http_addr;
    config.consumer_properties = cli.kafka_properties;
    let stop = CancellationToken::new();
    let sink = tokio::spawn(sink::run(config, stop.clone()));
    tokio::pin!(sink);
    tokio::select! {
        result = &mut sink => return joined(result),
        () = &mut shutdown => {}
    }
    tracing::info!("stopping: finishing in-flight batches");
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(30), &mut sink).await {
        Ok(result) => joined(result),
        Err(_) => Err(Error::Config("did not stop within 30 s".into())),
    }
}

fn joined(result: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    result.map_err(|e| Error::TaskFailed(e.to_string()))?
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == LogFormat::Json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.init();
    }
}
