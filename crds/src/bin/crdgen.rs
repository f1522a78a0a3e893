//! Writes the AnalyticDBSink CRD into the Helm chart (or to stdout with `-`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let target = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(adbsink_crd::CRD_PATH)
        });
    let yaml = match adbsink_crd::crd_yaml() {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if target.as_os_str() == "-" {
        print!("{yaml}");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::write(&target, yaml) {
        eprintln!("crdgen: cannot write {}: {e}", target.display());
        return ExitCode::FAILURE;
    }
    eprintln!("crdgen: wrote {}", target.display());
    ExitCode::SUCCESS
}
