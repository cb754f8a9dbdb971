//! The network filter (`root_id` `split-mirror-tcp`, before `tcp_proxy`): one VM entry per
//! connection (`on_new_connection`), no payload read, no per-packet callback. It reads the SNI
//! (and, for a sticky route, the client's address), lets `crate::tcp` choose, and hands the
//! cluster to `tcp_proxy` through the `envoy.tcp_proxy.cluster` filter state.

use crate::config::Config;
use crate::metrics::{tcp_connection_counter, TCP_UNMATCHED};
use crate::random::Rng;
use crate::tcp::filter_state::{
    set_filter_state_arguments, LifeSpan, SET_ENVOY_FILTER_STATE, TCP_PROXY_CLUSTER,
};
use crate::tcp::{choose_backend, match_route, TcpReason};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::{Action, MetricType};
use std::cell::Cell;
use std::rc::Rc;

/// Compiled once in `on_configure`; connection contexts hold an `Rc` of it.
pub struct TcpFilter {
    config: Config,
    unmatched: Option<u32>,
    /// `[route][backend][reason]` counter ids (`None`: the host refused the definition).
    connections: Vec<Vec<[Option<u32>; TcpReason::ALL.len()]>>,
    rng: Cell<Rng>,
}

impl TcpFilter {
    pub fn new(config: Config) -> Self {
        let connections = config
            .tcp_routes
            .iter()
            .map(|route| {
                route
                    .clusters
                    .iter()
                    .map(|cluster| {
                        TcpReason::ALL
                            .map(|r| define(&tcp_connection_counter(&route.name, cluster, r)))
                    })
                    .collect()
            })
            .collect();
        TcpFilter {
            unmatched: define(TCP_UNMATCHED),
            connections,
            config,
            rng: Cell::new(Rng::from_entropy()),
        }
    }

    /// Chooses the connection's cluster and sets it for `tcp_proxy`; without a matching route
    /// the connection keeps `tcp_proxy`'s own cluster.
    fn on_connection(&self) {
        let sni = property(&["connection", "requested_server_name"]).unwrap_or_default();
        let Some(route_index) = match_route(&self.config.tcp_routes, &sni) else {
            increment(self.unmatched);
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
        match hostcalls::call_foreign_function(SET_ENVOY_FILTER_STATE, Some(&arguments)) {
            Ok(_) => {
                let counters = self
                    .connections
                    .get(route_index)
                    .and_then(|r| r.get(backend));
                if let Some(counters) = counters {
                    increment(counters[reason.index()]);
                }
            }
            Err(status) => {
                // The connection goes to tcp_proxy's own cluster; say why once per failure.
                log::warn!("split-mirror: cannot set {TCP_PROXY_CLUSTER} to {cluster}: {status:?}");
                increment(self.unmatched);
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
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

fn define(name: &str) -> Option<u32> {
    match hostcalls::define_metric(MetricType::Counter, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("split-mirror: cannot define metric {name}: {status:?}");
            None
        }
    }
}

fn increment(counter: Option<u32>) {
    if let Some(id) = counter {
        // Stats are best effort: a failed increment must not disturb the connection.
        let _ = hostcalls::increment_metric(id, 1);
    }
}
