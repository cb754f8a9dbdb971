//! The filter delivered the way istiod delivers a WasmPlugin: Envoy's extension config
//! discovery (ECDS). The listener's HTTP filter (and the TLS listener's network filter) carries
//! `config_discovery` instead of a `typed_config`; the resource is the `TypedExtensionConfig`
//! istiod builds from the WasmPlugin (pilot/pkg/model/extensions.go): named
//! `extensions.istio.io/wasmplugin/<namespace>.<name>`, a `Wasm` filter whose plugin is named
//! `<namespace>.<name>`, `root_id` from `pluginName`, `vm_config` without `vm_id`, the failure
//! policy from `failStrategy`, and `pluginConfig` as a JSON `StringValue`. The HTTP plugin comes
//! from `split-mirror import --wasmplugin`, the network one from examples/istio. The source here
//! is a file (`path_config_source`) where istiod uses ADS; the Envoy side is the same. Without
//! a `vm_id` the two plugins share their VMs (same key: vm_id, VM configuration, module), so
//! the test checks that each plugin's update leaves the other's split alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::client::{count_by_backend, Request};
use common::envoy::{start_bootstrap, static_cluster, Envoy, ROUTE_HEADER};
use common::load::Load;
use common::{free_port, repo_root, scratch_dir, wasm_path};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HTTP_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const NETWORK_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm";
const V1: &str = "outbound|8000|v1|httpbin.httpbin.svc.cluster.local";
const V2: &str = "outbound|8000|v2|httpbin.httpbin.svc.cluster.local";
const TLS_STABLE: &str = "outbound|3000||rollouts-demo-stable.rollouts-demo.svc.cluster.local";
const TLS_CANARY: &str = "outbound|3000||rollouts-demo-canary.rollouts-demo.svc.cluster.local";
const SNI: &str = "rollouts-demo-vsvc.local";

/// The VirtualService a user has, with the split `v1`/`v2` (port 8000, namespace httpbin).
fn virtual_service(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: httpbin, namespace: httpbin}}
spec:
  hosts: [httpbin]
  http:
  - route:
    - destination: {{host: httpbin, subset: v1, port: {{number: 8000}}}}
      weight: {v1}
    - destination: {{host: httpbin, subset: v2, port: {{number: 8000}}}}
      weight: {v2}
"
    )
}

/// The WasmPlugin `split-mirror import --wasmplugin httpbin-split` prints for `input`.
fn imported_plugin(dir: &Path, input: &str) -> Value {
    let path = dir.join("virtualservice.yaml");
    std::fs::write(&path, input).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_split-mirror"))
        .args(["import", "--wasmplugin", "httpbin-split"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    first_of_kind(&text, "WasmPlugin")
}

fn first_of_kind(text: &str, kind: &str) -> Value {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde_json::to_value(serde_yaml_ng::Value::deserialize(d).unwrap()).unwrap())
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in:\n{text}"))
}

/// The ECDS resource istiod builds from a WasmPlugin, with the module where istio-agent puts it
/// after download (a local file).
fn extension_config(plugin: &Value, wasm: &Path) -> Value {
    let spec = &plugin["spec"];
    let plugin_name = format!(
        "{}.{}",
        plugin["metadata"]["namespace"].as_str().unwrap(),
        plugin["metadata"]["name"].as_str().unwrap()
    );
    let failure_policy = match spec["failStrategy"].as_str() {
        Some("FAIL_OPEN") => "FAIL_OPEN",
        Some("FAIL_RELOAD") => "FAIL_RELOAD",
        _ => "FAIL_CLOSED",
    };
    let filter_type = if spec["type"] == "NETWORK" {
        NETWORK_TYPE
    } else {
        HTTP_TYPE
    };
    json!({
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": resource_name(plugin),
        "typed_config": {"@type": filter_type, "config": {
            "name": plugin_name,
            "root_id": spec["pluginName"],
            "vm_config": {
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": wasm.to_string_lossy()}},
                "environment_variables": {"key_values": {
                    "ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION": "1"}}
            },
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": spec["pluginConfig"].to_string()},
            "failure_policy": failure_policy
        }}
    })
}

fn resource_name(plugin: &Value) -> String {
    format!(
        "extensions.istio.io/wasmplugin/{}.{}",
        plugin["metadata"]["namespace"].as_str().unwrap(),
        plugin["metadata"]["name"].as_str().unwrap()
    )
}

/// Writes the ECDS file atomically (write, then rename: what Envoy's file watch sees).
fn write_ecds(path: &Path, resource: &Value) {
    let temporary = path.with_extension("tmp");
    let document = json!({"resources": [resource]});
    std::fs::write(&temporary, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// `config_discovery` as istiod writes it, from a file instead of ADS.
fn config_discovery(path: &Path, type_url: &str) -> Value {
    json!({
        "config_source": {"path_config_source": {"path": path.to_string_lossy()},
                          "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
        "type_urls": [type_url]
    })
}

/// A TCP backend that counts the connections on which it received bytes (a TLS ClientHello),
/// then closes them.
struct TcpBackend {
    port: u16,
    count: Arc<AtomicUsize>,
}

impl TcpBackend {
    fn start() -> TcpBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut byte = [0u8; 1];
                    if stream.read(&mut byte).is_ok_and(|n| n == 1) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        TcpBackend { port, count }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// `n` TLS handshakes with SNI `sni` through `port`, each from its own loopback address
/// (127.0.x.y): the TLS plugin of examples/istio is sticky by client address. The backends do
/// not speak TLS, so each handshake fails after the ClientHello went through.
fn tls_connections(port: u16, sni: &str, n: usize) {
    let script = r#"
import socket, ssl, sys
port, sni, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
for i in range(n):
    source = "127.0.%d.%d" % (1 + i // 250, 1 + i % 250)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    try:
        context.wrap_socket(raw, server_hostname=sni).close()
    except (ssl.SSLError, OSError):
        pass
    finally:
        raw.close()
"#;
    let status = Command::new("python3")
        .args(["-c", script, &port.to_string(), sni, &n.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

struct Setup {
    envoy: Envoy,
    http_ecds: PathBuf,
    tls_ecds: PathBuf,
    http_plugin: Value,
    tls_port: u16,
    v1: Backend,
    v2: Backend,
    stable: TcpBackend,
    canary: TcpBackend,
}

/// One Envoy, two listeners: HTTP with the imported HTTP plugin through ECDS (routing on the
/// route header, as the header-routing VirtualService does), and TLS with the NETWORK plugin of
/// examples/istio through ECDS before tcp_proxy.
fn start() -> Setup {
    let dir = scratch_dir("ecds");
    let http_plugin = imported_plugin(&dir, &virtual_service(80, 20));
    let tls_text =
        std::fs::read_to_string(repo_root().join("examples/istio/wasmplugin-tls.yaml")).unwrap();
    let tls_plugin = first_of_kind(&tls_text, "WasmPlugin");
    let (http_ecds, tls_ecds) = (dir.join("ecds-http.json"), dir.join("ecds-tls.json"));
    write_ecds(&http_ecds, &extension_config(&http_plugin, &wasm_path()));
    write_ecds(&tls_ecds, &extension_config(&tls_plugin, &wasm_path()));
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let (stable, canary, other) = (
        TcpBackend::start(),
        TcpBackend::start(),
        TcpBackend::start(),
    );
    let (admin, port, tls_port) = (free_port(), free_port(), free_port());
    let http_listener = json!({
        "name": "http",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "http",
                "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/", "headers": [{"name": ROUTE_HEADER, "present_match": true}]},
                     "route": {"cluster_header": ROUTE_HEADER}},
                    {"match": {"prefix": "/"}, "route": {"cluster": V1}}]}]},
                "http_filters": [
                    {"name": resource_name(&http_plugin), "config_discovery": config_discovery(&http_ecds, HTTP_TYPE)},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                ]
            }
        }]}]
    });
    let tls_listener = json!({
        "name": "tls",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": tls_port}},
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "filter_chains": [{"filters": [
            {"name": resource_name(&tls_plugin), "config_discovery": config_discovery(&tls_ecds, NETWORK_TYPE)},
            {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "tls", "cluster": "other"}}
        ]}]
    });
    let bootstrap = json!({
        "node": {"id": "split-mirror-ecds-test", "cluster": "test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [http_listener, tls_listener],
            "clusters": [
                static_cluster(V1, v1.port), static_cluster(V2, v2.port),
                static_cluster(TLS_STABLE, stable.port), static_cluster(TLS_CANARY, canary.port),
                static_cluster("other", other.port)
            ]
        }
    });
    let envoy = start_bootstrap(dir, &bootstrap, None, (admin, port), 2);
    Setup {
        envoy,
        http_ecds,
        tls_ecds,
        http_plugin,
        tls_port,
        v1,
        v2,
        stable,
        canary,
    }
}

/// Four standard deviations of a share `p` over `n` draws.
fn four_sigma(p: f64, n: usize) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt()
}

fn assert_share(label: &str, count: usize, total: usize, expected: f64) {
    let share = count as f64 / total as f64;
    assert!(
        total > 0 && (share - expected).abs() <= four_sigma(expected, total),
        "{label}: {count} of {total} ({share:.3}), expected {expected} ± {:.3}",
        four_sigma(expected, total)
    );
}

/// The ECDS counters of the filter named `name` (`config_reload`, `config_fail`).
fn ecds_stat(envoy: &Envoy, name: &str, counter: &str) -> u64 {
    envoy
        .stats()
        .iter()
        .filter(|(key, _)| {
            key.contains("extension_config_discovery")
                && key.contains(name)
                && key.ends_with(counter)
        })
        .map(|(_, value)| *value)
        .sum()
}

fn wait_for_stat(envoy: &Envoy, name: &str, counter: &str, above: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = ecds_stat(envoy, name, counter);
        if value > above || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn http_and_tls_plugins_through_ecds_split_update_and_refuse_as_istio_delivers_them() {
    let setup = start();
    let envoy = &setup.envoy;
    let http_name = resource_name(&setup.http_plugin);
    let vms_at_start = envoy.stat("wasm.envoy.wasm.runtime.v8.active");
    let created_at_start = envoy.stat("wasm.envoy.wasm.runtime.v8.created");
    assert!(
        ecds_stat(envoy, &http_name, "config_reload") >= 1,
        "stats: {:?}",
        envoy
            .stats()
            .keys()
            .filter(|k| k.contains("extension_config"))
            .collect::<Vec<_>>()
    );

    // The HTTP plugin splits as the VirtualService it was imported from: 80/20.
    let request = Request::get("/").host("httpbin");
    let counts = count_by_backend(envoy.port, &request, 1_000);
    assert_share(
        "HTTP v2 at 20 %",
        counts.get("v2").copied().unwrap_or(0),
        1_000,
        0.2,
    );
    // The TLS plugin splits as examples/istio says: 80/20 by SNI, sticky by client address.
    tls_connections(setup.tls_port, SNI, 1_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.stable.count() + setup.canary.count() < 1_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (stable, canary) = (setup.stable.count(), setup.canary.count());
    assert_eq!(
        stable + canary,
        1_000,
        "TLS connections lost or sent elsewhere"
    );
    assert_share("TLS canary at 20 %", canary, 1_000, 0.2);

    // An ECDS update with new weights (the VirtualService re-imported at 20/80) under load:
    // every request answered 200, and the new split in force.
    let load = Load::start(
        request.clone(),
        envoy.port,
        Duration::from_millis(1),
        20_000,
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(500));
    let dir = setup.http_ecds.parent().unwrap().to_path_buf();
    let updated = imported_plugin(&dir, &virtual_service(20, 80));
    let reloads = ecds_stat(envoy, &http_name, "config_reload");
    write_ecds(&setup.http_ecds, &extension_config(&updated, &wasm_path()));
    assert!(
        wait_for_stat(envoy, &http_name, "config_reload", reloads) > reloads,
        "the update was not applied"
    );
    let applied = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // An invalid update (a negative weight): refused, the 20/80 configuration keeps serving.
    let mut invalid = updated.clone();
    invalid["spec"]["pluginConfig"]["routes"][0]["backends"][0]["weight"] = json!(-5);
    let fails = ecds_stat(envoy, &http_name, "config_fail");
    write_ecds(&setup.http_ecds, &extension_config(&invalid, &wasm_path()));
    let failed = wait_for_stat(envoy, &http_name, "config_fail", fails);
    assert!(failed > fails, "the invalid update was not refused");
    assert!(
        envoy.wait_for_log("backends[0].weight: expected an integer"),
        "{}",
        envoy.log_tail(30)
    );
    let refused = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let records = load.stop();
    let failed_requests: Vec<_> = records
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        failed_requests.is_empty(),
        "{} of {} requests failed during the updates",
        failed_requests.len(),
        records.len()
    );
    let after: Vec<_> = records
        .iter()
        .filter(|(at, _, _)| *at > applied + Duration::from_millis(100))
        .collect();
    let after_refused = after.iter().filter(|(at, _, _)| *at > refused).count();
    let v2_after = after.iter().filter(|(_, _, served)| served == "v2").count();
    assert!(
        after.len() >= 200 && after_refused >= 100,
        "too few answers after the update: {}",
        after.len()
    );
    assert_share(
        "HTTP v2 at 80 % after the update (and the refused one)",
        v2_after,
        after.len(),
        0.8,
    );

    // Side by side, they share nothing they must not: the HTTP updates left the TLS split as it
    // was, and each plugin's routes only in its own metrics.
    let before_tls = (setup.stable.count(), setup.canary.count());
    tls_connections(setup.tls_port, SNI, 500);
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.stable.count() + setup.canary.count() < before_tls.0 + before_tls.1 + 500
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The same 500 client addresses as the first 500 of the first round: sticky, so each
    // lands where it did.
    let second_canary = setup.canary.count() - before_tls.1;
    assert_share(
        "TLS canary at 20 % after the HTTP updates",
        second_canary,
        500,
        0.2,
    );
    // And the other way: the TLS plugin updated (everything to stable) leaves the HTTP split.
    let tls_text =
        std::fs::read_to_string(repo_root().join("examples/istio/wasmplugin-tls.yaml")).unwrap();
    let mut tls_plugin = first_of_kind(&tls_text, "WasmPlugin");
    tls_plugin["spec"]["pluginConfig"]["tcp_routes"][0]["backends"][1]["weight"] = json!(0);
    let tls_name = resource_name(&tls_plugin);
    let tls_reloads = ecds_stat(envoy, &tls_name, "config_reload");
    write_ecds(
        &setup.tls_ecds,
        &extension_config(&tls_plugin, &wasm_path()),
    );
    assert!(
        wait_for_stat(envoy, &tls_name, "config_reload", tls_reloads) > tls_reloads,
        "TLS update not applied"
    );
    let canary_before = setup.canary.count();
    let total_before = setup.stable.count() + canary_before;
    tls_connections(setup.tls_port, SNI, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.stable.count() + setup.canary.count() < total_before + 200
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        setup.canary.count(),
        canary_before,
        "the TLS canary at 0 still got connections"
    );
    let http_after_tls = count_by_backend(envoy.port, &request, 1_000);
    assert_share(
        "HTTP v2 still at 80 % after the TLS update",
        http_after_tls.get("v2").copied().unwrap_or(0),
        1_000,
        0.8,
    );

    let stats = envoy.stats();
    let wasm_keys: BTreeMap<_, _> = stats
        .iter()
        .filter(|(k, _)| k.starts_with("wasmcustom.") || k.starts_with("wasm."))
        .collect();
    assert!(
        wasm_keys.keys().any(|k| k.contains("route=httpbin")),
        "{wasm_keys:?}"
    );
    assert!(
        wasm_keys.keys().any(|k| k.contains("rollouts-demo-tls")),
        "{wasm_keys:?}"
    );
    eprintln!(
        "HTTP first 1000: {counts:?}; TLS 1000: stable {stable}, canary {canary}; during updates {} answers, {} after the update (v2 {v2_after}); TLS second 500: canary {second_canary}; VMs at start: {vms_at_start} active, {created_at_start} created; at the end: {:?}",
        records.len(), after.len(),
        wasm_keys.iter().filter(|(k, _)| k.contains("active") || k.contains("created")).collect::<Vec<_>>()
    );
    let _ = (&setup.v1, &setup.v2);
}
