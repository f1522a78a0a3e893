use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("adbsink-runtime: not implemented yet");
    ExitCode::FAILURE
}
