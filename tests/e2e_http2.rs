//! The HTTP filter over HTTP/2: a real h2c client (tests/common/h2_client.py, PyPI `h2`) sends
//! every request as a stream of one connection to Envoy (upstreams stay HTTP/1.1). The split is
//! per stream, not per connection; overrides and sticky keys are read from HTTP/2 headers; a
//! client-sent route header never wins. gRPC calls (unary and client-streaming, to recording h2c
//! servers: tests/common/h2_server.py) are mirrored with their content-type, path, metadata,
//! message bytes and request trailers, and a failing shadow never changes the primary's
//! `grpc-status`. The same with a real gRPC stack (PyPI grpcio client and servers,
//! tests/common/grpc_peer.py): the split and overrides, copies that run a grpcio shadow's
//! handler (which needs `te: trailers` on the copy), and the comparison of `grpc-status`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::Backend;
use common::envoy::{Envoy, FrontProxy, ROUTE_HEADER};
use common::{free_port, repo_root, scratch_dir};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Request headers of one stream.
fn stream(authority: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", "/"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    headers.sort_by_key(|(k, _)| !k.starts_with(':'));
    headers
}

/// Sends every request as a stream of one h2c connection; the `x-served-by` of each answer.
fn h2_served_by(envoy: &Envoy, requests: &[Vec<(String, String)>]) -> Vec<String> {
    let requests: Vec<Value> = requests.iter().map(|r| json!(r)).collect();
    h2_send(envoy, &requests)
        .iter()
        .map(|r| {
            assert_eq!(r[":status"], "200", "{r}");
            r["x-served-by"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// Sends every request (see tests/common/h2_client.py) as a stream of one h2c connection; the
/// response headers and trailers of each.
fn h2_send(envoy: &Envoy, requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/common/h2_client.py"))
        .arg(envoy.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let body = serde_json::to_vec(requests).unwrap();
        child.stdin.take().unwrap().write_all(&body).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "h2_client.py (pip install h2: `make envoy`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn counts(served: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for s in served {
        *counts.entry(s.clone()).or_insert(0) += 1;
    }
    counts
}

fn route(backends: Value, extra: Value) -> Value {
    let mut route = json!({"name": "httpbin", "hosts": ["httpbin"], "backends": backends});
    if let (Some(route), Some(extra)) = (route.as_object_mut(), extra.as_object()) {
        route.extend(extra.clone());
    }
    json!({ "routes": [route] })
}

fn weights(v1: u32, v2: u32) -> Value {
    json!([{"cluster": "v1", "weight": v1}, {"cluster": "v2", "weight": v2}])
}

#[test]
fn streams_of_one_connection_split_by_weight() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let envoy = FrontProxy::new(
        &route(weights(80, 20), json!({})),
        &[("v1", v1.port), ("v2", v2.port)],
    )
    .start();
    let requests = vec![stream("httpbin", &[]); 2000];
    let counts = counts(&h2_served_by(&envoy, &requests));
    common::assert_split("v1", &counts, "v1", 0.8);
    common::assert_split("v2", &counts, "v2", 0.2);
    // One HTTP/2 connection carried them all: the split is per stream.
    assert_eq!(envoy.stat("http.front.downstream_cx_http2_total"), 1);
    assert_eq!(envoy.stat("http.front.downstream_rq_http2_total"), 2000);
    eprintln!("2,000 streams on one h2c connection: {counts:?}");
}

#[test]
fn overrides_and_sticky_keys_come_from_http2_headers() {
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let config = route(
        weights(50, 50),
        json!({"overrides": [{"header": "x-canary", "value": "always", "backend": "v2"}],
               "sticky": {"header": "x-user-id"}}),
    );
    let envoy = FrontProxy::new(&config, &[("v1", v1.port), ("v2", v2.port)]).start();
    let forced = vec![stream("httpbin", &[("x-canary", "always"), ("x-user-id", "u1")]); 100];
    assert!(h2_served_by(&envoy, &forced).iter().all(|s| s == "v2"));
    // 100 users, 3 streams each, interleaved on one connection: each user on one backend.
    let users: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    let requests: Vec<_> = (0..3)
        .flat_map(|_| users.iter().map(|u| stream("httpbin", &[("x-user-id", u)])))
        .collect();
    let served = h2_served_by(&envoy, &requests);
    for (i, user) in users.iter().enumerate() {
        let mine: Vec<&String> = (0..3).map(|round| &served[round * 100 + i]).collect();
        assert!(mine.iter().all(|s| *s == mine[0]), "{user}: {mine:?}");
    }
    let v2_users = served[..100].iter().filter(|s| *s == "v2").count();
    assert!(
        (25..=75).contains(&v2_users),
        "{v2_users}/100 users on v2 at 50 %"
    );
}

#[test]
fn client_sent_route_header_never_wins_over_http2() {
    let [v1, v2, secret] = Backend::start_each(["v1", "v2", "secret"]);
    let envoy = FrontProxy::new(
        &route(weights(100, 0), json!({})),
        &[("v1", v1.port), ("v2", v2.port), ("secret", secret.port)],
    )
    .start();
    let mut requests = Vec::new();
    for authority in ["httpbin", "unmatched.example"] {
        for value in ["secret", "v2"] {
            requests.extend(vec![stream(authority, &[(ROUTE_HEADER, value)]); 20]);
        }
    }
    let served = h2_served_by(&envoy, &requests);
    assert!(served.iter().all(|s| s == "v1"), "{:?}", counts(&served));
    assert_eq!(secret.count(), 0);
    assert!(v1.requests().iter().all(|r| {
        r.header_count(ROUTE_HEADER) == 0 || r.header(ROUTE_HEADER).as_deref() == Some("v1")
    }));
}

/// A recording h2c server answering like a gRPC server (tests/common/h2_server.py).
struct H2Server {
    child: std::process::Child,
    port: u16,
    record: PathBuf,
}

impl H2Server {
    fn start(name: &str, http_status: u16) -> H2Server {
        H2Server::start_with(name, http_status, None)
    }

    /// With `grpc_status` in its trailers instead of the one its HTTP status implies.
    fn start_with(name: &str, http_status: u16, grpc_status: Option<&str>) -> H2Server {
        let port = free_port();
        let record = scratch_dir("h2-server").join(format!("{name}.jsonl"));
        let child = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("tests/common/h2_server.py"))
            .args([port.to_string(), name.to_string()])
            .arg(&record)
            .arg(http_status.to_string())
            .args(grpc_status)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "h2_server.py {name} did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        H2Server {
            child,
            port,
            record,
        }
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits (at most 5 s) until `n` requests are recorded.
    fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.records();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for H2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'v>(pairs: &'v Value, name: &str) -> Option<&'v str> {
    pairs
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

/// A gRPC length-prefixed message, in hex.
fn grpc_message(payload: &str) -> String {
    let mut bytes = vec![0u8];
    bytes.extend((payload.len() as u32).to_be_bytes());
    bytes.extend(payload.as_bytes());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn grpc_call(path: &str, call: usize, messages: &[String], trailers: Value) -> Value {
    json!({
        "headers": [[":method", "POST"], [":scheme", "http"], [":authority", "grpc.test"],
                    [":path", path], ["content-type", "application/grpc"], ["te", "trailers"],
                    ["x-call-id", call.to_string()], ["x-tenant-bin", "AAEC"]],
        "data": messages,
        "trailers": trailers
    })
}

fn grpc_proxy(mirrors: Value, clusters: &[(&str, u16)]) -> FrontProxy {
    let config = json!({"routes": [{"name": "grpc", "backends": [{"cluster": "grpc-v1"}], "mirrors": mirrors}]});
    FrontProxy::new(&config, clusters).http2_upstreams()
}

#[test]
fn grpc_unary_and_client_streaming_calls_reach_the_shadow_unchanged() {
    let (primary, shadow) = (
        H2Server::start("grpc-v1", 200),
        H2Server::start("grpc-shadow", 200),
    );
    let envoy = grpc_proxy(
        json!([{"cluster": "grpc-shadow", "percent": 100}]),
        &[("grpc-v1", primary.port), ("grpc-shadow", shadow.port)],
    )
    .start();
    let mut calls = Vec::new();
    for call in 0..5 {
        calls.push(grpc_call(
            "/echo.Echo/Unary",
            call,
            &[grpc_message(&format!("unary-{call}"))],
            json!([]),
        ));
    }
    for call in 5..10 {
        let messages: Vec<String> = (0..3)
            .map(|m| grpc_message(&format!("stream-{call}-{m}")))
            .collect();
        calls.push(grpc_call(
            "/echo.Echo/ClientStream",
            call,
            &messages,
            json!([["x-checksum", format!("sum-{call}")]]),
        ));
    }
    for response in h2_send(&envoy, &calls) {
        assert_eq!(response[":status"], "200", "{response}");
        assert_eq!(response["grpc-status"], "0", "{response}");
        assert_eq!(response["x-served-by"], "grpc-v1", "{response}");
    }
    let mirrored = shadow.wait_for(10);
    assert_eq!(mirrored.len(), 10, "shadow received {mirrored:?}");
    let primary_records = primary.records();
    for call in &calls {
        let id = header(&call["headers"], "x-call-id").unwrap();
        let copy = mirrored
            .iter()
            .find(|r| header(&r["headers"], "x-call-id") == Some(id))
            .unwrap_or_else(|| panic!("call {id} not mirrored"));
        let original = primary_records
            .iter()
            .find(|r| header(&r["headers"], "x-call-id") == Some(id))
            .unwrap();
        let sent: String = call["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(copy["body"], sent, "call {id}: message bytes");
        assert_eq!(original["body"], sent, "call {id}: primary's message bytes");
        for name in [":path", ":method", "content-type", "te", "x-tenant-bin"] {
            assert_eq!(
                header(&copy["headers"], name),
                header(&call["headers"], name),
                "call {id}: {name}"
            );
        }
        // The -shadow rule of Envoy's mirrors, on HTTP/2's :authority.
        assert_eq!(
            header(&copy["headers"], ":authority"),
            Some("grpc.test-shadow"),
            "call {id}"
        );
        assert_eq!(
            original["trailers"], call["trailers"],
            "call {id}: primary's request trailers"
        );
        // The filter hands the trailers to dispatch_http_call, but Envoy's async client sends
        // headers and body only (AsyncRequestSharedImpl::initialize, "TODO: Support request
        // trailers"): a shadow the filter sends has none. Envoy's own mirror keeps them (below).
        assert_eq!(
            copy["trailers"],
            json!([]),
            "call {id}: Envoy now sends request trailers"
        );
    }
}

/// With `cluster_header` the filter only samples and Envoy's router mirrors the whole stream:
/// the request trailers reach the shadow too.
#[test]
fn grpc_request_trailers_reach_the_shadow_through_envoys_mirror() {
    let (primary, shadow) = (
        H2Server::start("grpc-v1", 200),
        H2Server::start("grpc-shadow", 200),
    );
    let header_name = "x-split-mirror-cluster";
    let envoy = grpc_proxy(
        json!([{"cluster": "grpc-shadow", "percent": 100, "cluster_header": header_name}]),
        &[("grpc-v1", primary.port), ("grpc-shadow", shadow.port)],
    )
    .mirror_cluster_header(header_name)
    .start();
    let calls: Vec<Value> = (0..5)
        .map(|call| {
            let messages: Vec<String> = (0..3)
                .map(|m| grpc_message(&format!("s{call}-{m}")))
                .collect();
            grpc_call(
                "/echo.Echo/ClientStream",
                call,
                &messages,
                json!([["x-checksum", format!("sum-{call}")]]),
            )
        })
        .collect();
    for response in h2_send(&envoy, &calls) {
        assert_eq!(response["grpc-status"], "0", "{response}");
    }
    let mirrored = shadow.wait_for(5);
    assert_eq!(mirrored.len(), 5);
    for call in &calls {
        let id = header(&call["headers"], "x-call-id").unwrap();
        let copy = mirrored
            .iter()
            .find(|r| header(&r["headers"], "x-call-id") == Some(id))
            .unwrap_or_else(|| panic!("call {id} not mirrored"));
        let sent: String = call["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(copy["body"], sent, "call {id}");
        assert_eq!(
            copy["trailers"], call["trailers"],
            "call {id}: request trailers"
        );
        assert_eq!(
            header(&copy["headers"], ":authority"),
            Some("grpc.test-shadow"),
            "call {id}"
        );
        assert_eq!(
            header(&copy["headers"], "content-type"),
            Some("application/grpc")
        );
    }
}

#[test]
fn shadow_failure_never_changes_the_primary_grpc_status() {
    let (primary, failing) = (
        H2Server::start("grpc-v1", 200),
        H2Server::start("grpc-failing", 503),
    );
    let envoy = grpc_proxy(
        json!([{"cluster": "grpc-failing", "percent": 100}, {"cluster": "grpc-unreachable", "percent": 100, "timeout_ms": 200}]),
        &[("grpc-v1", primary.port), ("grpc-failing", failing.port), ("grpc-unreachable", free_port())],
    )
    .start();
    let calls: Vec<Value> = (0..20)
        .map(|call| grpc_call("/echo.Echo/Unary", call, &[grpc_message("x")], json!([])))
        .collect();
    for response in h2_send(&envoy, &calls) {
        assert_eq!(response[":status"], "200", "{response}");
        assert_eq!(response["grpc-status"], "0", "{response}");
        assert_eq!(response["x-served-by"], "grpc-v1", "{response}");
    }
    assert_eq!(
        failing.wait_for(20).len(),
        20,
        "the failing shadow got every copy"
    );
    assert_eq!(primary.records().len(), 20);
}

#[test]
fn a_grpc_status_in_the_trailers_is_compared() {
    // Both candidates answer HTTP 200; one of them fails every call with grpc-status 14.
    let primary = H2Server::start("grpc-v1", 200);
    let same = H2Server::start("grpc-same", 200);
    let unavailable = H2Server::start_with("grpc-unavailable", 200, Some("14"));
    let envoy = grpc_proxy(
        json!([{"cluster": "grpc-same", "compare": {}}, {"cluster": "grpc-unavailable", "compare": {}}]),
        &[("grpc-v1", primary.port), ("grpc-same", same.port), ("grpc-unavailable", unavailable.port)],
    )
    .start();
    let calls: Vec<Value> = (0..10)
        .map(|call| grpc_call("/echo.Echo/Unary", call, &[grpc_message("x")], json!([])))
        .collect();
    for response in h2_send(&envoy, &calls) {
        assert_eq!(response["grpc-status"], "0", "{response}");
    }
    let result = |mirror: &str, result: &str| {
        envoy.stat(&format!(
            "wasmcustom.split_mirror_compare_total;route=grpc;mirror={mirror};result={result}"
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while result("grpc-same", "same") + result("grpc-unavailable", "differ") < 20
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(result("grpc-same", "same"), 10);
    assert_eq!(result("grpc-unavailable", "differ"), 10);
    assert_eq!(
        envoy.stat("wasmcustom.split_mirror_compare_diff_total;route=grpc;mirror=grpc-unavailable;part=status"),
        10
    );
    assert!(envoy.wait_for_log("differ: POST /echo.Echo/Unary (1 differences): status: \"200 grpc-status 0\" vs \"200 grpc-status 14\""),
        "{}", envoy.log_tail(20));
}

// --- A real gRPC stack (PyPI grpcio, C-core) as client and servers: tests/common/grpc_peer.py.
// The recording h2 servers above accept requests real gRPC servers refuse (a copy without
// `te: trailers` is reset by grpcio's server); these tests hold the filter to what grpcio does.

/// A grpcio server of `echo.Echo` that records every call its handler ran.
struct GrpcServer {
    child: std::process::Child,
    port: u16,
    record: PathBuf,
}

impl GrpcServer {
    fn start(name: &str) -> GrpcServer {
        GrpcServer::start_failing(name, None)
    }

    /// Every call fails with gRPC status `code` (the handler still runs and records it).
    fn start_failing(name: &str, code: Option<u32>) -> GrpcServer {
        let port = free_port();
        let record = scratch_dir("grpc-server").join(format!("{name}.jsonl"));
        let child = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("tests/common/grpc_peer.py"))
            .args(["server", &port.to_string(), name])
            .arg(&record)
            .args(code.map(|c| c.to_string()))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "grpc_peer.py server {name} did not listen (pip install grpcio: `make envoy`)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        GrpcServer {
            child,
            port,
            record,
        }
    }

    /// The calls its handler ran: `{"method", "metadata", "messages"}`.
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits (at most 10 s) until `n` calls are recorded.
    fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls();
            if calls.len() >= n || Instant::now() > deadline {
                return calls;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One call for grpc_peer.py's client: `Unary` (one message) or `Collect` (client streaming).
fn grpcio_call(method: &str, messages: &[String], metadata: &[(&str, String)]) -> Value {
    json!({"method": method, "messages": messages, "metadata": metadata})
}

/// Sends `calls` with grpcio's client on one channel to Envoy (`:authority` grpc.test); the
/// `{"code", "reply"}` of each (the reply is the name of the server that answered).
fn grpcio_send(envoy: &Envoy, calls: &[Value]) -> Vec<Value> {
    let mut child = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/common/grpc_peer.py"))
        .args(["client", &envoy.port.to_string(), "grpc.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let body = serde_json::to_vec(calls).unwrap();
        child.stdin.take().unwrap().write_all(&body).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "grpc_peer.py client (pip install grpcio: `make envoy`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.len(), calls.len());
    results
}

#[test]
fn grpcio_calls_split_by_weight_and_follow_overrides() {
    let (v1, v2) = (GrpcServer::start("grpc-v1"), GrpcServer::start("grpc-v2"));
    let config = json!({"routes": [{"name": "grpc",
        "backends": [{"cluster": "grpc-v1", "weight": 80}, {"cluster": "grpc-v2", "weight": 20}],
        "overrides": [{"header": "x-canary", "value": "always", "backend": "grpc-v2"}]}]});
    let envoy = FrontProxy::new(&config, &[("grpc-v1", v1.port), ("grpc-v2", v2.port)])
        .http2_upstreams()
        .start();
    // 1,000 calls at 20 %: sigma 0.0126, the tolerance 0.0506 is 4 sigma.
    const CALLS: usize = 1000;
    let calls: Vec<Value> = (0..CALLS)
        .map(|i| grpcio_call("Unary", &[format!("split-{i}")], &[]))
        .collect();
    let results = grpcio_send(&envoy, &calls);
    assert!(results.iter().all(|r| r["code"] == 0), "{results:?}");
    let on_v2 = results.iter().filter(|r| r["reply"] == "grpc-v2").count();
    let tolerance = common::four_sigma(0.2, CALLS);
    common::assert_share_within("grpc-v2", on_v2, CALLS, 0.2, tolerance);
    // The handlers ran: each server recorded the calls it answered.
    assert_eq!(v2.calls().len(), on_v2);
    assert_eq!(v1.calls().len(), CALLS - on_v2);

    let forced: Vec<Value> = (0..100)
        .map(|i| {
            grpcio_call(
                "Unary",
                &[format!("forced-{i}")],
                &[("x-canary", "always".into())],
            )
        })
        .collect();
    let results = grpcio_send(&envoy, &forced);
    assert!(
        results
            .iter()
            .all(|r| r["code"] == 0 && r["reply"] == "grpc-v2"),
        "{results:?}"
    );
    assert_eq!(v2.calls().len(), on_v2 + 100);
    eprintln!("grpcio through Envoy: grpc-v2 answered {on_v2}/{CALLS} at 20 %, 100/100 overridden");
}

#[test]
fn grpcio_unary_and_client_streaming_copies_run_the_shadows_handler() {
    let (primary, shadow) = (
        GrpcServer::start("grpc-v1"),
        GrpcServer::start("grpc-shadow"),
    );
    let envoy = grpc_proxy(
        json!([{"cluster": "grpc-shadow", "percent": 100}]),
        &[("grpc-v1", primary.port), ("grpc-shadow", shadow.port)],
    )
    .start();
    const EACH: usize = 50;
    let mut calls = Vec::new();
    for i in 0..EACH {
        let id = ("x-call-id", format!("u{i}"));
        calls.push(grpcio_call("Unary", &[format!("unary-{i}")], &[id]));
        let messages: Vec<String> = (0..3).map(|m| format!("stream-{i}-{m}")).collect();
        calls.push(grpcio_call(
            "Collect",
            &messages,
            &[("x-call-id", format!("s{i}"))],
        ));
    }
    let results = grpcio_send(&envoy, &calls);
    assert!(
        results
            .iter()
            .all(|r| r["code"] == 0 && r["reply"] == "grpc-v1"),
        "{results:?}"
    );
    let copies = shadow.wait_for(2 * EACH);
    let mirrored = envoy.stat_required(
        "wasmcustom.split_mirror_mirror_total;route=grpc;mirror=grpc-shadow;outcome=mirrored",
    );
    let answered = envoy.stat("cluster.grpc-shadow.upstream_rq_2xx");
    let failed = envoy.stat("cluster.grpc-shadow.upstream_rq_5xx");
    eprintln!(
        "{} calls: filter mirrored {mirrored}, shadow cluster 2xx {answered} 5xx {failed}, \
         the shadow's handler ran {}",
        2 * EACH,
        copies.len()
    );
    assert_eq!(mirrored, 2 * EACH as u64);
    assert_eq!(
        copies.len(),
        2 * EACH,
        "the grpcio shadow's handler ran {} of {} copies (5xx at the shadow cluster: {failed})",
        copies.len(),
        2 * EACH
    );
    for call in &calls {
        let id = call["metadata"][0][1].as_str().unwrap();
        let copy = copies
            .iter()
            .find(|c| {
                c["metadata"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|pair| pair[0] == "x-call-id" && pair[1] == id)
            })
            .unwrap_or_else(|| panic!("call {id} did not reach the shadow's handler"));
        assert_eq!(copy["method"], call["method"], "call {id}");
        assert_eq!(copy["messages"], call["messages"], "call {id}: messages");
    }
    assert_eq!(primary.calls().len(), 2 * EACH);
}

#[test]
fn grpcio_status_is_compared_against_real_servers() {
    let primary = GrpcServer::start("grpc-v1");
    let same = GrpcServer::start("grpc-same");
    // 14: UNAVAILABLE, in the trailers of an HTTP 200 answer, as grpcio sends it.
    let unavailable = GrpcServer::start_failing("grpc-unavailable", Some(14));
    let envoy = grpc_proxy(
        json!([{"cluster": "grpc-same", "compare": {}}, {"cluster": "grpc-unavailable", "compare": {}}]),
        &[("grpc-v1", primary.port), ("grpc-same", same.port), ("grpc-unavailable", unavailable.port)],
    )
    .start();
    const CALLS: usize = 20;
    let calls: Vec<Value> = (0..CALLS)
        .map(|i| grpcio_call("Unary", &[format!("compared-{i}")], &[]))
        .collect();
    let results = grpcio_send(&envoy, &calls);
    assert!(
        results
            .iter()
            .all(|r| r["code"] == 0 && r["reply"] == "grpc-v1"),
        "{results:?}"
    );
    let result = |mirror: &str, result: &str| {
        envoy.stat(&format!(
            "wasmcustom.split_mirror_compare_total;route=grpc;mirror={mirror};result={result}"
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while result("grpc-same", "same") + result("grpc-unavailable", "differ") < 2 * CALLS as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "compared: grpc-same same {}, grpc-unavailable differ {}; handlers ran {} and {}",
        result("grpc-same", "same"),
        result("grpc-unavailable", "differ"),
        same.calls().len(),
        unavailable.calls().len()
    );
    assert_eq!(same.wait_for(CALLS).len(), CALLS, "grpc-same's handler");
    assert_eq!(
        unavailable.wait_for(CALLS).len(),
        CALLS,
        "grpc-unavailable's handler"
    );
    assert_eq!(result("grpc-same", "same"), CALLS as u64);
    assert_eq!(result("grpc-unavailable", "differ"), CALLS as u64);
    assert_eq!(
        envoy.stat_required(
            "wasmcustom.split_mirror_compare_diff_total;route=grpc;mirror=grpc-unavailable;part=status"
        ),
        CALLS as u64
    );
    assert!(
        envoy.wait_for_log(
            "differ: POST /echo.Echo/Unary (1 differences): status: \"200 grpc-status 0\" vs \"200 grpc-status 14\""
        ),
        "{}",
        envoy.log_tail(20)
    );
}
