//! The network filter's per-connection logic on the in-memory proxy.

use super::*;
use crate::metrics::tcp_connection_counter;
use crate::proxy::double::FakeProxy;
use serde_json::json;
use std::cell::RefCell;

struct FakeConnection {
    sni: Option<&'static str>,
    refuse: bool,
    set: RefCell<Vec<Vec<u8>>>,
}

impl Connection for FakeConnection {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        match path {
            ["connection", "requested_server_name"] => self.sni.map(|s| s.as_bytes().to_vec()),
            ["source", "address"] => Some(b"10.0.0.7:4000".to_vec()),
            _ => None,
        }
    }

    fn set_filter_state(&self, arguments: &[u8]) -> Result<(), Refused> {
        if self.refuse {
            return Err(Refused("NotFound".to_string()));
        }
        self.set.borrow_mut().push(arguments.to_vec());
        Ok(())
    }
}

fn connect(
    worker: &TcpWorker,
    proxy: &FakeProxy,
    sni: Option<&'static str>,
    refuse: bool,
) -> usize {
    let connection = FakeConnection {
        sni,
        refuse,
        set: RefCell::new(Vec::new()),
    };
    worker.on_connection(proxy, &connection);
    let set = connection.set.borrow().len();
    set
}

#[test]
fn connection_is_routed_counted_and_unmatched_keeps_tcp_proxys_cluster() {
    let config = json!({"tcp_routes": [{"name": "tls", "sni_hosts": ["a.local"],
        "backends": [{"cluster": "stable", "weight": 1}, {"cluster": "canary", "weight": 0}]}]});
    let config = Config::from_json(config.to_string().as_bytes()).unwrap();
    let proxy = FakeProxy::new(0);
    let worker = TcpWorker::new(&proxy, config, Rng::from_seed(5));
    assert_eq!(connect(&worker, &proxy, Some("a.local"), false), 1);
    assert_eq!(connect(&worker, &proxy, Some("b.local"), false), 0);
    assert_eq!(connect(&worker, &proxy, None, false), 0);
    let counted = tcp_connection_counter("tls", "stable", TcpReason::Weight);
    assert_eq!(proxy.stat(&counted), Some(1));
    assert_eq!(proxy.stat(TCP_UNMATCHED), Some(2));
    // A refused filter state: the connection keeps tcp_proxy's cluster and counts as unmatched.
    assert_eq!(connect(&worker, &proxy, Some("a.local"), true), 0);
    assert_eq!(proxy.stat(&counted), Some(1));
    assert_eq!(proxy.stat(TCP_UNMATCHED), Some(3));
    // The canary never had a connection: its series does not exist.
    let canary = tcp_connection_counter("tls", "canary", TcpReason::Weight);
    assert_eq!(proxy.stat(&canary), None);
}

#[test]
fn rollout_steps_by_the_clock_and_stops_with_the_followed_abort() {
    use crate::proxy::Proxy as _;
    let config = json!({
        "routes": [{"name": "web", "backends": [{"cluster": "s"}, {"cluster": "c", "weight": 0}],
            "rollout": {"canary": "c", "guard": {"max_error_rate": 0.05, "min_requests": 1, "window_s": 30}}}],
        "tcp_routes": [{"name": "tls", "sni_hosts": ["a.local"],
            "backends": [{"cluster": "stable", "weight": 100}, {"cluster": "canary", "weight": 0}],
            "rollout": {"canary": "canary", "start": "2026-12-01T10:00:00Z",
                "steps": [{"weight": 100}], "follow": "web"}}]});
    let config = Config::from_json(config.to_string().as_bytes()).unwrap();
    let key = crate::rollout::state::abort_key(
        "web",
        config.routes[0].rollout.as_ref().unwrap().fingerprint,
    );
    // 2026-12-01T10:00:00Z in ms: before it the configured weights, then 100 % canary.
    let start: u64 = 1_796_119_200_000;
    let proxy = FakeProxy::new(start - 1000);
    let worker = TcpWorker::new(&proxy, config, Rng::from_seed(5));
    let canary = tcp_connection_counter("tls", "canary", TcpReason::Weight);
    let stable = tcp_connection_counter("tls", "stable", TcpReason::Weight);
    connect(&worker, &proxy, Some("a.local"), false);
    assert_eq!((proxy.stat(&stable), proxy.stat(&canary)), (Some(1), None));
    proxy.set_now(start);
    connect(&worker, &proxy, Some("a.local"), false);
    assert_eq!(proxy.stat(&canary), Some(1));
    // The HTTP guard aborts on some worker: read at most a second after the last read.
    proxy.set_shared_data(&key, b"aborted", None).unwrap();
    proxy.advance(500);
    connect(&worker, &proxy, Some("a.local"), false);
    assert_eq!(proxy.stat(&canary), Some(2), "read before a second passed");
    proxy.advance(500);
    for _ in 0..10 {
        connect(&worker, &proxy, Some("a.local"), false);
    }
    assert_eq!(proxy.stat(&canary), Some(2));
    assert_eq!(proxy.stat(&stable), Some(11));
}
