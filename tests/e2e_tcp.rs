//! The network filter (`root_id` `split-mirror-tcp`, `envoy.filters.network.wasm` before
//! `tcp_proxy`, `tls_inspector` on the listener) in a real Envoy with real TLS: certificates are
//! made with the `openssl` command, the backends are Envoy listeners that terminate TLS with
//! their own certificate and answer with their name, and the client (tests/common/tls_client.py)
//! verifies every handshake against the test CA. The front proxy holds no certificate: a
//! verified handshake with the certificate of the backend that answered is passthrough proven.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::envoy::{
    start_bootstrap, start_shipped_with, static_cluster, wasm_filter, Envoy, FrontProxy,
};
use common::{free_port, repo_root, scratch_dir, wasm_path};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SNI: &str = "rollouts-demo-vsvc.local";
const BACKENDS: [&str; 3] = ["stable", "canary", "default"];

/// One batch of connections for the client.
#[derive(Clone)]
struct Job {
    sni: Option<&'static str>,
    tls: bool,
    source: Option<String>,
    count: usize,
}

impl Job {
    fn tls(sni: Option<&'static str>, count: usize) -> Job {
        Job {
            sni,
            tls: true,
            source: None,
            count,
        }
    }

    fn from(source: String, count: usize) -> Job {
        Job {
            sni: Some(SNI),
            tls: true,
            source: Some(source),
            count,
        }
    }

    fn json(&self) -> Value {
        json!({"sni": self.sni, "tls": self.tls, "source": self.source, "count": self.count})
    }
}

/// The backend that answered one connection, its certificate checked.
type Served = Result<String, String>;

struct Tls {
    dir: PathBuf,
}

impl Tls {
    /// A CA and one certificate per backend (CN = the backend's name), made with openssl.
    fn make(dir: &Path) -> Tls {
        let run = |args: &[&str]| {
            let output = Command::new("openssl").args(args).current_dir(dir).output();
            let output = output.unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=split-mirror-test-ca",
        ];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        run(&ca);
        for name in BACKENDS {
            let (key, csr, pem, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            std::fs::write(
                dir.join(&ext),
                format!(
                    "subjectAltName=DNS:{name}.backend,DNS:{SNI}\nbasicConstraints=CA:FALSE\n\
                     subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
                ),
            )
            .unwrap();
            let subject = format!("/CN={name}");
            let mut req = vec!["req", "-subj", &subject, "-keyout", &key, "-out", &csr];
            req.extend(ec);
            run(&req);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ]);
        }
        Tls {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// A backend: TLS connections get a handshake with its certificate, plain ones none; both get
/// an HTTP answer whose body is its name.
fn backend_listener(tls: &Tls, name: &str, port: u16) -> Value {
    let answer = |text: String| {
        json!([{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": format!("backend_{name}"),
            // Close right after the answer (the default waits 1 s for the client to close first).
            "delayed_close_timeout": "0s",
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": text}}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}])
    };
    json!({
        "name": format!("backend-{name}"),
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "listener_filters": [tls_inspector()],
        "filter_chains": [
            {"filter_chain_match": {"transport_protocol": "tls"},
             "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {"tls_certificates": [{
                    "certificate_chain": {"filename": tls.file(&format!("{name}.pem"))},
                    "private_key": {"filename": tls.file(&format!("{name}.key"))}}]}}},
             "filters": answer(format!("{name}\n"))},
            {"filters": answer(format!("{name}\n"))}
        ]
    })
}

fn tls_inspector() -> Value {
    json!({"name": "envoy.filters.listener.tls_inspector", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}})
}

/// The front listener: tls_inspector, the filter as a network filter, tcp_proxy whose own
/// cluster is `default`. `root_id` picks the filter kind.
fn front_listener(port: u16, config: &Value, root_id: &str) -> Value {
    json!({
        "name": "front-tls",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "listener_filters": [tls_inspector()],
        "filter_chains": [{"filters": [
            {"name": "envoy.filters.network.wasm", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
                "config": {
                    "name": "split-mirror-tcp",
                    "root_id": root_id,
                    "vm_config": {
                        "vm_id": "split-mirror",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm_path().to_string_lossy()}}
                    },
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                      "value": config.to_string()}
                }}},
            {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "front_tls", "cluster": "default"}}
        ]}]
    })
}

struct Front {
    envoy: Envoy,
    tls: Tls,
}

impl Front {
    /// Backends and the front proxy in one Envoy (two workers); the front listener through
    /// file-based LDS so tests can update it.
    fn start(config: &Value) -> Front {
        Front::start_with(config, |_| (Vec::new(), Vec::new()))
    }

    /// As [`Front::start`], with listeners and clusters `extra` makes from the backends'
    /// ports (name, port).
    fn start_with(
        config: &Value,
        extra: impl FnOnce(&[(&str, u16)]) -> (Vec<Value>, Vec<Value>),
    ) -> Front {
        let dir = scratch_dir("tcp");
        let tls = Tls::make(&dir);
        let ports: Vec<(&str, u16)> = BACKENDS.iter().map(|n| (*n, free_port())).collect();
        let (admin, port) = (free_port(), free_port());
        let (extra_listeners, extra_clusters) = extra(&ports);
        let bootstrap = json!({
            "node": {"id": "split-mirror-tcp-test", "cluster": "test"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "static_resources": {
                "listeners": ports.iter().map(|(n, p)| backend_listener(&tls, n, *p))
                    .chain(extra_listeners).collect::<Vec<_>>(),
                "clusters": ports.iter().map(|(n, p)| static_cluster(n, *p))
                    .chain(extra_clusters).collect::<Vec<_>>()
            },
            "dynamic_resources": {"lds_config": {"resource_api_version": "V3",
                "path_config_source": {"path": dir.join("lds.yaml").to_string_lossy()}}}
        });
        let listener = front_listener(port, config, "split-mirror-tcp");
        let envoy = start_bootstrap(dir, &bootstrap, Some(&listener), (admin, port), 2);
        Front { envoy, tls }
    }

    fn update(&self, config: &Value) -> bool {
        self.envoy
            .update_listener(&front_listener(self.envoy.port, config, "split-mirror-tcp"))
    }

    /// Runs the jobs through the client; each connection's backend, its certificate checked.
    fn connect(&self, jobs: &[Job]) -> Vec<Vec<Served>> {
        connect(self.envoy.port, &self.tls.file("ca.pem"), jobs)
    }
}

fn connect(port: u16, ca: &str, jobs: &[Job]) -> Vec<Vec<Served>> {
    let python = repo_root().join(".venv/bin/python");
    let mut child = Command::new(if python.exists() {
        python
    } else {
        "python3".into()
    })
    .arg(repo_root().join("tests/common/tls_client.py"))
    .args([port.to_string(), ca.to_string()])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let input: Vec<Value> = jobs.iter().map(Job::json).collect();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(Value::Array(input).to_string().as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "tls_client.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Vec<Value>> = serde_json::from_slice(&output.stdout).unwrap();
    results
        .into_iter()
        .zip(jobs)
        .map(|(results, job)| {
            results
                .into_iter()
                .map(|r| {
                    if let Some(error) = r["error"].as_str() {
                        return Err(error.to_string());
                    }
                    let served = r["served"].as_str().unwrap_or("").to_string();
                    if job.tls && r["cert"].as_str() != Some(served.as_str()) {
                        return Err(format!("answered by {served}, certificate {}", r["cert"]));
                    }
                    Ok(served)
                })
                .collect()
        })
        .collect()
}

/// Every connection succeeded: the backends, in order.
fn served(results: Vec<Served>) -> Vec<String> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("connection failed: {e}")))
        .collect()
}

fn counts(served: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in served {
        *counts.entry(name.clone()).or_insert(0) += 1;
    }
    counts
}

fn demo_route(stable: u32, canary: u32, sticky: bool) -> Value {
    let mut route = json!({
        "name": "rollouts-demo-tls",
        "sni_hosts": [SNI],
        "backends": [{"cluster": "stable", "weight": stable}, {"cluster": "canary", "weight": canary}]
    });
    if sticky {
        route["sticky"] = json!({"source_address": true});
    }
    route
}

fn tcp_config(routes: Value) -> Value {
    json!({ "tcp_routes": routes })
}

fn connection_stat(backend: &str, reason: &str) -> String {
    format!("wasmcustom.split_mirror_tcp_connections_total;route=rollouts-demo-tls;backend={backend};reason={reason}")
}

#[test]
fn tls_connections_split_by_sni_at_80_20_with_passthrough() {
    let front = Front::start(&tcp_config(json!([demo_route(80, 20, false)])));
    let started = Instant::now();
    let served = served(front.connect(&[Job::tls(Some(SNI), 2000)]).remove(0));
    let counts = counts(&served);
    eprintln!(
        "2,000 TLS connections in {:?}: {counts:?}",
        started.elapsed()
    );
    assert_eq!(served.len(), 2000);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["canary", "stable"]
    );
    common::assert_share("stable", counts["stable"], 2000, 0.8);
    common::assert_share("canary", counts["canary"], 2000, 0.2);
    let stats = front.envoy.stats();
    let stat = |name: &str| stats.get(name).copied().unwrap_or(0) as usize;
    assert_eq!(stat(&connection_stat("stable", "weight")), counts["stable"]);
    assert_eq!(stat(&connection_stat("canary", "weight")), counts["canary"]);
    assert_eq!(stat("wasmcustom.split_mirror_tcp_unmatched_total"), 0);
}

#[test]
fn unmatched_sni_and_plain_tcp_keep_the_default_cluster_and_a_catch_all_takes_them() {
    let front = Front::start(&tcp_config(json!([demo_route(0, 100, false)])));
    let plain = Job {
        sni: None,
        tls: false,
        source: None,
        count: 5,
    };
    let jobs = [
        Job::tls(Some("other.local"), 5),
        Job::tls(None, 5),
        plain,
        Job::tls(Some("ROLLOUTS-DEMO-VSVC.local"), 5),
    ];
    let results: Vec<Vec<String>> = front.connect(&jobs).into_iter().map(served).collect();
    for (job, served) in jobs.iter().zip(&results[..3]) {
        assert!(
            served.iter().all(|s| s == "default"),
            "{:?} tls={}: {served:?}",
            job.sni,
            job.tls
        );
    }
    assert!(results[3].iter().all(|s| s == "canary"), "{:?}", results[3]);
    assert_eq!(
        front
            .envoy
            .stat("wasmcustom.split_mirror_tcp_unmatched_total"),
        15
    );

    // A route without sni_hosts catches connections with any SNI, without SNI, and plain TCP.
    let catch_all = json!({"name": "any", "backends": [{"cluster": "stable"}]});
    assert!(front.update(&tcp_config(json!([demo_route(0, 100, false), catch_all]))));
    let results: Vec<Vec<String>> = front.connect(&jobs).into_iter().map(served).collect();
    for served in &results[..3] {
        assert!(served.iter().all(|s| s == "stable"), "{served:?}");
    }
    assert!(results[3].iter().all(|s| s == "canary"), "{:?}", results[3]);
    assert_eq!(
        front.envoy.stat(
            "wasmcustom.split_mirror_tcp_connections_total;route=any;backend=stable;reason=weight"
        ),
        15
    );
}

/// Client addresses of the sticky test: 127.0.1.x to 127.0.4.x.
const STICKY_SOURCES: usize = 400;

/// [`STICKY_SOURCES`] loopback addresses, 3 connections each: the backend of each.
fn by_address(front: &Front) -> HashMap<String, String> {
    let sources: Vec<String> = (1..=4)
        .flat_map(|block| (1..=100).map(move |i| format!("127.0.{block}.{i}")))
        .collect();
    assert_eq!(sources.len(), STICKY_SOURCES);
    let jobs: Vec<Job> = sources.iter().map(|s| Job::from(s.clone(), 3)).collect();
    let results = front.connect(&jobs);
    sources
        .into_iter()
        .zip(results)
        .map(|(source, results)| {
            let served = served(results);
            assert!(
                served.iter().all(|s| *s == served[0]),
                "{source} landed on {served:?}"
            );
            (source, served[0].clone())
        })
        .collect()
}

#[test]
fn sticky_source_address_keeps_each_client_and_a_ramp_moves_clients_only_onto_the_canary() {
    let front = Front::start(&tcp_config(json!([demo_route(90, 10, true)])));
    // The addresses are fixed, so is their hash: each run sees the same shares. The bounds are
    // 4 sigma of a random draw over 400 clients (10 %: 0.060, so 16..=64 on the canary and
    // never none; 50 %: 0.100), what a hash that spreads keys like a draw must meet.
    let n = STICKY_SOURCES;
    let before = by_address(&front);
    let canary = before.values().filter(|b| *b == "canary").count();
    common::assert_share_within("canary at 10 %", canary, n, 0.1, common::four_sigma(0.1, n));
    assert!(canary > 0);
    assert_eq!(
        front
            .envoy
            .stat_required(&connection_stat("canary", "sticky")),
        3 * canary as u64
    );

    assert!(front.update(&tcp_config(json!([demo_route(50, 50, true)]))));
    let after = by_address(&front);
    let canary_after = after.values().filter(|b| *b == "canary").count();
    common::assert_share_within(
        "canary at 50 %",
        canary_after,
        n,
        0.5,
        common::four_sigma(0.5, n),
    );
    for (source, was) in &before {
        let now = &after[source];
        assert!(
            was == now || now == "canary",
            "{source} moved {was} -> {now}"
        );
    }
    eprintln!("sticky: canary {canary}/{n} at 10 %, {canary_after}/{n} at 50 %");
}

#[test]
fn refused_configurations_are_logged_and_the_old_one_keeps_serving() {
    let front = Front::start(&tcp_config(json!([demo_route(0, 100, false)])));
    let only_http = json!({"routes": [{"name": "web", "backends": [{"cluster": "stable"}]}]});
    let refused = [
        (
            only_http,
            "tcp_routes: missing: loaded as the network filter",
        ),
        (
            tcp_config(json!([{"name": "t", "backends": [{"cluster": "stable", "weight": -5}]}])),
            "tcp_route \"t\": backends[0].weight: expected an integer 0..=1000000, got -5",
        ),
        (
            tcp_config(json!([demo_route(0, 0, false)])),
            "tcp_route \"rollouts-demo-tls\": backends: the weights sum to 0",
        ),
        (
            tcp_config(json!([demo_route(1, 1, false), demo_route(1, 2, false)])),
            "name: duplicate route name (tcp_routes[0] and tcp_routes[1])",
        ),
        (
            tcp_config(json!([{"name": "t", "sni": ["a"], "backends": [{"cluster": "stable"}]}])),
            "tcp_route \"t\": sni: unknown field `sni`",
        ),
        (
            tcp_config(json!([])),
            "tcp_routes: expected at least one route, got an empty list",
        ),
        (
            tcp_config(
                json!([{"name": "t", "sni_hosts": ["a.local:443"], "backends": [{"cluster": "stable"}]}]),
            ),
            "tcp_route \"t\": sni_hosts[0]: give the host without a port",
        ),
    ];
    for (config, message) in &refused {
        assert!(!front.update(config), "accepted: {config}");
        assert!(front.envoy.wait_for_log(message), "not logged: {message}");
    }
    let served = served(front.connect(&[Job::tls(Some(SNI), 10)]).remove(0));
    assert!(served.iter().all(|s| s == "canary"), "{served:?}");
}

#[test]
fn http_filter_with_only_tcp_routes_is_refused() {
    let config = tcp_config(json!([demo_route(1, 1, false)]));
    let proxy = FrontProxy::new(&config, &[("stable", free_port())]);
    let (success, log) = common::envoy::start_expecting_exit(&proxy);
    assert!(!success);
    assert!(
        log.contains("routes: missing: the HTTP filter needs `routes`"),
        "{}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn weight_updates_under_connection_load_drop_no_connection() {
    let front = Arc::new(Front::start(&tcp_config(json!([demo_route(
        100, 0, false
    )]))));
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<Served>>> = Arc::default();
    let load = {
        let (front, stop, outcomes) = (front.clone(), stop.clone(), outcomes.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            // Batches of 40 connections, bounded by count and time.
            for _ in 0..200 {
                if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(40) {
                    break;
                }
                let results = front.connect(&[Job::tls(Some(SNI), 40)]).remove(0);
                outcomes.lock().unwrap().extend(results);
            }
        })
    };
    for (stable, canary) in [(80, 20), (50, 50), (0, 100), (100, 0), (20, 80), (0, 100)] {
        std::thread::sleep(Duration::from_millis(700));
        assert!(front.update(&tcp_config(json!([demo_route(stable, canary, false)]))));
    }
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(outcomes.len() >= 200, "only {} connections", outcomes.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    // The last step (0/100) took effect.
    let last = served(front.connect(&[Job::tls(Some(SNI), 20)]).remove(0));
    assert!(last.iter().all(|s| s == "canary"), "{last:?}");
    eprintln!(
        "{} connections during 6 weight updates, none failed",
        outcomes.len()
    );
}

/// envoy/envoy-tls.yaml as shipped (ports moved, certificates made by tools/tls_certs.py in a
/// scratch directory): SNI rollouts-demo-vsvc.local splits 80/20, another SNI keeps tcp_proxy's
/// tls-default, and the counters carry the route, backend and reason labels.
#[test]
fn shipped_tls_harness_splits_by_sni() {
    let certs = scratch_dir("tls-certs");
    let made = Command::new("python3")
        .arg(repo_root().join("tools/tls_certs.py"))
        .arg(&certs)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ports: Vec<(u16, u16)> = [10443, 9903, 10011, 10012, 10013]
        .iter()
        .map(|&p| (p, free_port()))
        .collect();
    let cert_dir = format!("{}/", certs.to_string_lossy());
    let envoy = start_shipped_with(
        "envoy/envoy-tls.yaml",
        &[("target/tls/", &cert_dir)],
        &ports,
        10443,
        9903,
    );
    let ca = certs.join("ca.pem").to_string_lossy().into_owned();
    // 1,100 connections at 80/20: sigma 0.0121, the tolerance 0.05 is 4.1 sigma.
    const CONNECTIONS: usize = 1100;
    let results = connect(
        envoy.port,
        &ca,
        &[
            Job::tls(Some(SNI), CONNECTIONS),
            Job::tls(Some("other.local"), 5),
        ],
    );
    let mut results = results.into_iter().map(served);
    let split = counts(&results.next().unwrap());
    assert!(common::SHARE_TOLERANCE >= common::four_sigma(0.2, CONNECTIONS));
    common::assert_share(
        "tls-stable",
        split.get("tls-stable").copied().unwrap_or(0),
        CONNECTIONS,
        0.8,
    );
    common::assert_share(
        "tls-canary",
        split.get("tls-canary").copied().unwrap_or(0),
        CONNECTIONS,
        0.2,
    );
    assert!(results.next().unwrap().iter().all(|s| s == "tls-default"));
    let prometheus = common::client::Request::get("/stats/prometheus")
        .host("admin")
        .send(envoy.admin_port);
    let text = String::from_utf8_lossy(&prometheus.body);
    let line = format!(
        "split_mirror_tcp_connections_total{{route=\"rollouts-demo-tls\",backend=\"tls-canary\",reason=\"weight\"}} {}",
        split.get("tls-canary").copied().unwrap_or(0)
    );
    assert!(
        text.contains(&line),
        "no `{line}` in:\n{}",
        text.lines()
            .filter(|l| l.contains("split_mirror"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(text.contains("split_mirror_tcp_unmatched_total{} 5"));
}

/// An HTTP listener on `port` with the HTTP filter (same `vm_id` as the network filter) and
/// Envoy's router on the route header.
fn http_listener(port: u16, config: &Value) -> Value {
    json!({
        "name": "front-http",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "front_http",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                    "match": {"prefix": "/"},
                    "route": {"cluster_header": "x-split-cluster"}}]}]},
                "http_filters": [
                    wasm_filter(&config.to_string()),
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                ]
            }
        }]}]
    })
}

/// `offset_s` from now as RFC 3339 (UTC, whole seconds).
fn rfc3339_in(offset_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset_s;
    let (days, secs) = (now.div_euclid(86_400), now.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[test]
fn tcp_rollout_ramps_by_the_clock_and_follows_the_http_guard() {
    const RAMP_SNI: &str = "ramp.local";
    const FOLLOW_SNI: &str = SNI;
    // Nothing listens on the HTTP canary's port: Envoy answers 503, the guard aborts.
    let (http_port, dead_port) = (free_port(), free_port());
    let config = json!({
        "routes": [{"name": "web", "backends": [{"cluster": "stable", "weight": 50},
                                                 {"cluster": "dead", "weight": 50}],
            "rollout": {"canary": "dead",
                        "guard": {"max_error_rate": 0.05, "min_requests": 5, "window_s": 30}}}],
        "tcp_routes": [
            // Started 100 s ago: step 1 (10 %, 30 s) is over, step 2 (40 %) holds.
            {"name": "ramp", "sni_hosts": [RAMP_SNI],
             "backends": [{"cluster": "stable", "weight": 100}, {"cluster": "canary", "weight": 0}],
             "rollout": {"canary": "canary", "start": rfc3339_in(-100),
                         "steps": [{"weight": 10, "hold_s": 30}, {"weight": 40, "hold_s": 1000},
                                   {"weight": 80}]}},
            // 50 % by its configured weights, until the HTTP route's guard aborts.
            {"name": "rollouts-demo-tls", "sni_hosts": [FOLLOW_SNI],
             "backends": [{"cluster": "stable", "weight": 50}, {"cluster": "canary", "weight": 50}],
             "rollout": {"canary": "canary", "follow": "web"}}
        ]
    });
    // The HTTP route's `stable` is the backend listener's plain chain (it answers 200).
    let front = Front::start_with(&config, |_| {
        (
            vec![http_listener(http_port, &config)],
            vec![static_cluster("dead", dead_port)],
        )
    });
    let n = 1200;
    let ramp = served(front.connect(&[Job::tls(Some("ramp.local"), n)]).remove(0));
    let canary = ramp.iter().filter(|b| *b == "canary").count();
    let sigma = (0.4 * 0.6 / n as f64).sqrt();
    assert!(
        (canary as f64 / n as f64 - 0.4).abs() <= 4.0 * sigma,
        "step 2 (40 %): {canary}/{n} to the canary"
    );
    let before = counts(&served(
        front.connect(&[Job::tls(Some(FOLLOW_SNI), 400)]).remove(0),
    ));
    assert!(
        before.get("canary").copied().unwrap_or(0) > 100,
        "{before:?}"
    );

    // The HTTP route's canary fails: its guard aborts; the TLS canary follows within ~1 s.
    for _ in 0..60 {
        common::client::Request::get("/")
            .host("web")
            .try_send(http_port)
            .ok();
    }
    assert!(front.envoy.wait_for_log("route \"web\": rollout aborted"));
    let aborted_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    let after = counts(&served(
        front.connect(&[Job::tls(Some(FOLLOW_SNI), 400)]).remove(0),
    ));
    assert_eq!(
        after.get("canary"),
        None,
        "after the followed abort: {after:?}"
    );
    eprintln!(
        "ramp: {canary}/{n} at 40 %; follow: before {before:?}, {:.1} s after the abort {after:?}",
        aborted_at.elapsed().as_secs_f64()
    );
}
