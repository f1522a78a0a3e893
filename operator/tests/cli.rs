//! The `adbsink-operator` and `kubectl-adbsink` binaries against API servers that are not there
//! or do not answer: a clear error and a non-zero exit, or a clean exit 0 on SIGTERM.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A kubeconfig whose only cluster is `server`; removed when dropped.
struct Kubeconfig(PathBuf);

impl Kubeconfig {
    fn new(server: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "adbsink-operator-cli-{}-{}.yaml",
            std::process::id(),
            server.rsplit(':').next().unwrap()
        ));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    \
             cluster: c\n    user: u\ncurrent-context: x\n"
        );
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for Kubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A kubeconfig naming a loopback port that was bound, then closed: connections are refused.
fn refusing_api_server() -> Kubeconfig {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Kubeconfig::new(&format!("http://127.0.0.1:{port}"))
}

fn operator(kubeconfig: &Kubeconfig) -> Child {
    Command::new(env!("CARGO_BIN_EXE_adbsink-operator"))
        .args(["--metrics-addr", "127.0.0.1:0", "--log-format", "text"])
        .env("KUBECONFIG", &kubeconfig.0)
        .env("RUST_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_api_server_that_refuses_connections_exits_1_naming_the_crd_check() {
    let kubeconfig = refusing_api_server();
    let output = operator(&kubeconfig).wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("adbsink-operator: cannot list AnalyticDBSink resources"),
        "{stderr}"
    );
}

#[test]
fn the_kubectl_plugin_names_an_unreachable_api_server() {
    let kubeconfig = refusing_api_server();
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-adbsink"))
        .args(["status", "clicks", "-n", "default"])
        .env("KUBECONFIG", &kubeconfig.0)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("kubectl-adbsink: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_while_the_api_server_does_not_answer_exits_0() {
    // Accepts connections and never answers, like a server behind a black-holing network.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let kubeconfig = Kubeconfig::new(&format!("http://127.0.0.1:{port}"));
    let mut child = operator(&kubeconfig);
    // The operator logs to stdout, as pods usually do; stderr is for the reason it failed. Read
    // on a thread, so a marker that never comes fails the test instead of hanging it.
    let logs = BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in logs.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    // Logged once the signal handlers are in place, just before the call that hangs.
    while !seen.contains("checking that the AnalyticDBSink CRD is installed") {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push_str(&(line + "\n")),
            Err(_) => {
                let _ = child.kill();
                panic!("no start-up line within 30 s:\n{seen}");
            }
        }
    }
    let started = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM:\n{seen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rest: Vec<String> = lines.try_iter().collect();
    let rest = rest.join("\n");
    assert_eq!(status.code(), Some(0), "exit 0 on SIGTERM\n{seen}{rest}");
}
