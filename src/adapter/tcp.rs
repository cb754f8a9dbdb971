//! The network filter (`root_id` `split-mirror-tcp`, before `tcp_proxy`): one VM entry per
//! connection (`on_new_connection`), no payload read, no per-packet callback. It reads the SNI
//! (and, for a sticky route, the client's address), lets `crate::tcp` choose, and hands the
//! cluster to `tcp_proxy` through the `envoy.tcp_proxy.cluster` filter state.

use super::abi;
use super::wasm_proxy::WasmProxy;
use crate::config::Config;
use crate::metrics::{tcp_connection_counter, CounterTable, TCP_UNMATCHED};
use crate::proxy::{define, MetricKind, Proxy};
use crate::random::Rng;
use crate::tcp::filter_state::{
    set_filter_state_arguments, LifeSpan, SET_ENVOY_FILTER_STATE, TCP_PROXY_CLUSTER,
};
use crate::tcp::{choose_backend, match_route, TcpReason};
use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::Action;
use std::cell::Cell;
use std::rc::Rc;

/// Compiled once in `on_configure`; connection contexts hold an `Rc` of it.
pub struct TcpFilter {
    config: Config,
    /// Defined with the configuration (one series); the per-route counters on first use.
    unmatched: Option<u32>,
    /// `[route][backend][reason]`
    connections: CounterTable<{ TcpReason::ALL.len() }>,
    rng: Cell<Rng>,
}

impl TcpFilter {
    pub fn new(config: Config) -> Self {
        TcpFilter {
            unmatched: define(&WasmProxy, MetricKind::Counter, TCP_UNMATCHED),
            connections: CounterTable::new(config.tcp_routes.iter().map(|r| r.clusters.len())),
            config,
            rng: Cell::new(Rng::from_entropy()),
        }
    }

    fn count_unmatched(&self) {
        if let Some(id) = self.unmatched {
            WasmProxy.add_metric(id, 1);
        }
    }

    /// Chooses the connection's cluster and sets it for `tcp_proxy`; without a matching route
    /// the connection keeps `tcp_proxy`'s own cluster.
    fn on_connection(&self) {
        let sni = property(&["connection", "requested_server_name"]).unwrap_or_default();
        let Some(route_index) = match_route(&self.config.tcp_routes, &sni) else {
            self.count_unmatched();
            return;
        };
        let Some(route) = self.config.tcp_routes.get(route_index) else {
            return;
        };
        let mut rng = self.rng.get();
        let (backend, reason) =
            choose_backend(route, || property(&["source", "address"]), &mut rng);
        self.rng.set(rng);
        let Some(cluster) = route.clusters.get(backend) else {
            return;
        };
        let arguments =
            set_filter_state_arguments(TCP_PROXY_CLUSTER, cluster, LifeSpan::FilterChain);
        match abi::call_foreign_function(SET_ENVOY_FILTER_STATE, &arguments) {
            Ok(()) => {
                let id = self
                    .connections
                    .id(route_index, backend, reason.index(), || {
                        let name = tcp_connection_counter(&route.name, cluster, reason);
                        define(&WasmProxy, MetricKind::Counter, &name)
                    });
                if let Some(id) = id {
                    WasmProxy.add_metric(id, 1);
                }
            }
            Err(status) => {
                // The connection goes to tcp_proxy's own cluster; say why once per failure.
                let status = status.name();
                log::warn!("split-mirror: cannot set {TCP_PROXY_CLUSTER} to {cluster}: {status}");
                self.count_unmatched();
            }
        }
    }
}

/// One downstream connection.
pub struct SplitMirrorTcp {
    filter: Option<Rc<TcpFilter>>,
}

impl SplitMirrorTcp {
    pub fn new(filter: Option<Rc<TcpFilter>>) -> Self {
        SplitMirrorTcp { filter }
    }
}

impl Context for SplitMirrorTcp {}

impl StreamContext for SplitMirrorTcp {
    fn on_new_connection(&mut self) -> Action {
        if let Some(filter) = &self.filter {
            filter.on_connection();
        }
        Action::Continue
    }
}

/// A property's bytes; missing or unreadable is `None` (plain TCP has no SNI).
fn property(path: &[&str]) -> Option<Vec<u8>> {
    abi::property(path).ok().flatten()
}
