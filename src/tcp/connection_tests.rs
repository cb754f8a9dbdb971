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
