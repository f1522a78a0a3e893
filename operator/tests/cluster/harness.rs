//! A real Kubernetes API server (`scripts/dev-services.sh` starts one from `../shared/k8s`, or
//! `ADBSINK_KUBECONFIG` names any disposable cluster), the CRD from the chart, the real operator
//! binary watching one namespace per test, kubectl as users run it, and the real broker.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adbsink_crd::AnalyticDBSink;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// How long one step may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// One test's cluster: its own namespace and its own operator, which watches only that
/// namespace, so tests run side by side.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    kubeconfig: PathBuf,
    operator: Option<Child>,
    log: PathBuf,
    /// Where the operator serves /metrics.
    pub metrics_port: u16,
}

impl Cluster {
    /// None (the test is skipped, saying so) when no API server is configured, except under
    /// CI, where a skipped tier would prove nothing: there it fails.
    pub async fn start(prefix: &str) -> Option<Self> {
        let mut cluster = Self::without_operator(prefix).await?;
        cluster.start_operator();
        Some(cluster)
    }

    /// The cluster and the namespace, no operator yet.
    pub async fn without_operator(prefix: &str) -> Option<Self> {
        let Ok(kubeconfig) = std::env::var("ADBSINK_KUBECONFIG") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "ADBSINK_KUBECONFIG is not set under CI: scripts/dev-services.sh up starts the \
                 control plane from ../shared/k8s"
            );
            eprintln!("skipped: no Kubernetes API server (ADBSINK_KUBECONFIG is not set)");
            return None;
        };
        adbsink_operator::install_crypto_provider();
        let kubeconfig = PathBuf::from(kubeconfig);
        let config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
            &KubeConfigOptions::default(),
        )
        .await
        .expect("kube config");
        let client = Client::try_from(config).expect("client");
        let namespace = unique(prefix);
        let cluster = Self {
            client,
            namespace: namespace.clone(),
            log: std::env::temp_dir().join(format!("{namespace}-operator.log")),
            kubeconfig,
            operator: None,
            metrics_port: free_port(),
        };
        cluster.kubectl_ok(&[
            "apply",
            "--server-side",
            "--field-manager",
            "adbsink-tests",
            "-f",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../charts/adbsink-operator/crds/"
            ),
        ]);
        // Polled rather than `kubectl wait`, which fails at once instead of waiting while a
        // CRD just created has no status yet.
        cluster.crd_established().await;
        Api::<Namespace>::all(cluster.client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                    .expect("namespace"),
            )
            .await
            .expect("create namespace");
        Some(cluster)
    }

    async fn crd_established(&self) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        eventually(self, "the AnalyticDBSink CRD Established", || async {
            let conditions = crds
                .get_opt("analyticdbsinks.adbsink.io")
                .await
                .ok()??
                .status?
                .conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }

    /// Starts (or restarts) the operator binary on this test's namespace.
    pub fn start_operator(&mut self) {
        self.start_operator_with(&[]);
    }

    /// Starts (or restarts) the operator with extra flags; its POD_NAME is
    /// [`Cluster::pod_name`], as the chart sets it.
    pub fn start_operator_with(&mut self, args: &[&str]) {
        let pod_name = self.pod_name();
        let child = self.spawn_operator(
            args,
            &[("POD_NAME", &pod_name)],
            self.metrics_port,
            &self.log,
        );
        self.operator = Some(child);
    }

    /// The POD_NAME the test's operator runs with.
    pub fn pod_name(&self) -> String {
        format!("{}-operator-0", self.namespace)
    }

    /// Runs `kubectl adbsink` (the plugin binary) in the test's namespace; must succeed.
    pub fn plugin(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_kubectl-adbsink"))
            .args(["--namespace", &self.namespace])
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("kubectl-adbsink");
        assert!(
            output.status.success(),
            "kubectl adbsink {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Another operator process on this namespace, with extra flags and environment.
    pub fn spawn_operator(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        metrics_port: u16,
        log: &std::path::Path,
    ) -> Child {
        let log = std::fs::File::create(log).expect("operator log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_adbsink-operator"));
        command.args([
            "--watch-namespaces",
            &self.namespace,
            "--log-format",
            "text",
        ]);
        if !args.contains(&"--metrics-addr") {
            command.args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")]);
        }
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the operator")
    }

    pub fn sinks(&self) -> Api<AnalyticDBSink> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Runs kubectl against the cluster in the test's namespace, YAML on stdin when given.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let kubectl = std::env::var("ADBSINK_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("kubectl output")
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_with(args, None)
    }

    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.kubectl(args, stdin);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The operator's log so far, for a failure message.
    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the operator, takes the finalizers off the sinks that are left (nothing would
    /// remove them: the namespace would stay Terminating, and the API server and namespace
    /// controller would keep working on it for as long as the cluster runs), and deletes the
    /// namespace with what the test made.
    pub async fn finish(mut self) {
        self.stop_operator();
        if let Ok(left) = self.sinks().list(&Default::default()).await {
            let patch =
                kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
            for sink in left.items {
                let name = kube::ResourceExt::name_any(&sink);
                let _ = self
                    .sinks()
                    .patch(&name, &kube::api::PatchParams::default(), &patch)
                    .await;
            }
        }
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }

    /// Kills the operator with SIGKILL: no shutdown, no Lease release, reconciles cut short.
    pub fn stop_operator(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_operator();
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    /// A counter or gauge from the operator's own /metrics; None while it does not answer.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metric_at(self.metrics_port, name).await
    }
}

/// A counter or gauge from an operator's /metrics on `port`; None while it does not answer.
pub async fn metric_at(port: u16, name: &str) -> Option<f64> {
    let response = http_get(&format!("127.0.0.1:{port}"), "/metrics").await?;
    response.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The whole HTTP/1.1 response (status line included) to a GET of `path` at `address`.
pub async fn http_get(address: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// A name unique to this process and call, valid as a namespace and a sink name.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` until it returns `Some`, or panics after `LIMIT` saying what was awaited.
pub async fn eventually<T, F, Fut>(cluster: &Cluster, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {LIMIT:?} waiting for {what}; operator log:\n{}",
            cluster.operator_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The broker of the local services.
pub fn bootstrap() -> String {
    std::env::var("ADBSINK_KAFKA_BOOTSTRAP")
        .expect("ADBSINK_KAFKA_BOOTSTRAP is not set: run `eval \"$(scripts/dev-services.sh env)\"`")
}

/// Whether the broker has `topic`.
pub fn topic_exists(topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("consumer");
    consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata")
        .topics()
        .iter()
        .any(|t| t.name() == topic)
}

/// Polls until every one of `topics` exists (`present`) or none does.
pub async fn topics_become(cluster: &Cluster, topics: &[String], present: bool) {
    let what = format!("topics {topics:?} present={present}");
    eventually(cluster, &what, || async {
        let topics = topics.to_vec();
        let done =
            tokio::task::spawn_blocking(move || topics.iter().all(|t| topic_exists(t) == present))
                .await
                .ok()?;
        done.then_some(())
    })
    .await;
}

/// The condition `type_` of the sink as (status, reason), once it has a status.
pub async fn condition(cluster: &Cluster, name: &str, type_: &str) -> Option<(String, String)> {
    let sink = cluster.sinks().get(name).await.ok()?;
    sink.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason))
}

/// Whether consumer group `group` (reading `topic`) exists on the broker.
pub async fn group_exists(group: &str, topic: &str) -> bool {
    use adbsink_crd::{InitialOffset, ResourceCreation};
    use adbsink_runtime::provision::{GroupState, Provisioner};
    let connection = adbsink_runtime::KafkaConnection {
        bootstrap_servers: bootstrap(),
        ..Default::default()
    };
    let state = Provisioner::new(&connection)
        .expect("provisioner")
        .ensure_group(
            group,
            topic,
            InitialOffset::Earliest,
            ResourceCreation::Manual,
        )
        .await
        .expect("group lookup");
    state == GroupState::Exists
}

/// Creates the source topic the sink reads.
pub async fn create_topic(topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin");
    let topic = NewTopic::new(topic, 3, TopicReplication::Fixed(-1));
    admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topic");
}

/// Creates the source topic of sink `name` and applies its `manifest` server-side, as a user
/// would.
pub async fn apply_new_sink(cluster: &Cluster, name: &str, manifest: &str) {
    create_topic(&format!("{name}-in")).await;
    cluster.kubectl_with(&["apply", "--server-side", "-f", "-"], Some(manifest));
}

/// A database password Secret `name` of the user's.
pub fn create_password_secret(cluster: &Cluster, name: &str, password: &str) {
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        name,
        &format!("--from-literal=password={password}"),
    ]);
}

/// A sink manifest as a user writes it, with an inline password or a reference.
pub fn manifest(name: &str, password: Password<'_>) -> String {
    let credential = match password {
        Password::Inline(p) => format!("password: \"{p}\""),
        Password::Ref(secret) => format!("passwordSecretRef: {{name: {secret}, key: password}}"),
    };
    format!(
        "apiVersion: adbsink.io/v1alpha1\nkind: AnalyticDBSink\nmetadata:\n  name: {name}\nspec:\n  \
         source: {{bootstrapServers: \"{}\", topic: {name}-in}}\n  \
         destination: {{instanceType: AnalyticDBForPostgreSQL, host: db.invalid, database: d, \
         table: t, username: writer, {credential}}}\n",
        bootstrap()
    )
}

#[derive(Debug, Clone, Copy)]
pub enum Password<'a> {
    Inline(&'a str),
    Ref(&'a str),
}

/// The value of one key of a Secret, if both exist.
pub async fn secret_value(cluster: &Cluster, name: &str, key: &str) -> Option<String> {
    let secret = cluster
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get_opt(name)
        .await
        .ok()??;
    let bytes = secret.data?.get(key)?.0.clone();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
