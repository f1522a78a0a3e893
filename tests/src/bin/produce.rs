//! Produces one message per stdin line to a topic (creating it if missing):
//! `produce BOOTSTRAP TOPIC [PARTITIONS] < messages.jsonl`. Used by the demo; the tests use the
//! library functions directly.

use std::io::BufRead;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bootstrap), Some(topic)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: produce BOOTSTRAP TOPIC [PARTITIONS] < messages");
        return ExitCode::from(2);
    };
    let partitions = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(3);
    let lines: Vec<String> = match std::io::stdin().lock().lines().collect() {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("produce: reading stdin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kafka = adbsink_tests::Kafka::new(bootstrap);
    if let Err(e) = kafka.create_topic(topic, partitions).await {
        eprintln!("produce: {e}");
        return ExitCode::FAILURE;
    }
    let messages: Vec<(Option<String>, Vec<u8>)> =
        lines.into_iter().map(|l| (None, l.into_bytes())).collect();
    match kafka.produce(topic, &messages).await {
        Ok(()) => {
            eprintln!("produce: {} messages to {topic}", messages.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("produce: {e}");
            ExitCode::FAILURE
        }
    }
}
