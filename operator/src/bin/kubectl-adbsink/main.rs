//! `kubectl adbsink`: status, pause, resume, scale, restart and test-send for AnalyticDBSinks.
//! Installed on PATH as `kubectl-adbsink`, kubectl runs it as a plugin.

mod commands;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kubectl adbsink",
    version,
    about = "Manage AnalyticDBSink resources"
)]
struct Cli {
    /// Namespace of the sink (default: the kubeconfig context's namespace).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Conditions, tasks, lag and the last error of a sink.
    Status { name: String },
    /// Stop consumption (sink pods scaled to zero); nothing is deleted.
    Pause { name: String },
    /// Resume consumption from the committed offsets.
    Resume { name: String },
    /// Set the consumer concurrency (1, 2, 3, 6 or 12); the operator resizes the sink pods.
    Scale {
        name: String,
        #[arg(long)]
        concurrency: u32,
    },
    /// Roll the sink pods once, e.g. after a Stop-policy failure was fixed.
    Restart { name: String },
    /// Send one message to the sink's source topic, like the console's Test button.
    Test {
        name: String,
        /// The message value, normally a JSON object.
        #[arg(long)]
        value: String,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        partition: Option<i32>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    adbsink_operator::install_crypto_provider();
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("kubectl-adbsink: cannot reach the cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let namespace = cli
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let result = match cli.command {
        Command::Status { name } => commands::status(client, &namespace, &name)
            .await
            .map(|text| print!("{text}")),
        Command::Pause { name } => commands::set_paused(client, &namespace, &name, true)
            .await
            .map(|()| println!("analyticdbsink/{name} paused")),
        Command::Resume { name } => commands::set_paused(client, &namespace, &name, false)
            .await
            .map(|()| println!("analyticdbsink/{name} resumed")),
        Command::Scale { name, concurrency } => {
            commands::scale(client, &namespace, &name, concurrency)
                .await
                .map(|()| println!("analyticdbsink/{name} scaled to concurrency {concurrency}"))
        }
        Command::Restart { name } => commands::restart(client, &namespace, &name)
            .await
            .map(|token| println!("analyticdbsink/{name} restart requested ({token})")),
        Command::Test {
            name,
            value,
            key,
            partition,
        } => commands::send_test(client, &namespace, &name, &value, key.as_deref(), partition)
            .await
            .map(|(p, o)| println!("sent to partition {p} at offset {o}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubectl-adbsink: {e}");
            ExitCode::FAILURE
        }
    }
}
