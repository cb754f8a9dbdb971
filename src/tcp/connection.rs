//! One worker's network filter: per connection, read the SNI (and for a sticky route the
//! client's address), choose the cluster, hand it to `tcp_proxy`, and count. Plain logic over
//! [`Proxy`] and [`Connection`].

use super::filter_state::{set_filter_state_arguments, LifeSpan, TCP_PROXY_CLUSTER};
use super::{choose_backend, match_route, TcpReason};
use crate::config::Config;
use crate::metrics::{tcp_connection_counter, CounterTable, TCP_UNMATCHED};
use crate::proxy::metric::define;
use crate::proxy::{MetricKind, Proxy, Refused};
use crate::random::Rng;
use std::cell::Cell;

/// The downstream connection, as the proxy exposes it.
pub trait Connection {
    /// A property's bytes (`["connection", "requested_server_name"]`); missing or unreadable is
    /// `None` (plain TCP has no SNI).
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;

    /// Sets Envoy filter state through `set_envoy_filter_state` (`arguments` from
    /// `filter_state::set_filter_state_arguments`).
    fn set_filter_state(&self, arguments: &[u8]) -> Result<(), Refused>;
}

/// Compiled once per configuration; connection contexts hold an `Rc` of it.
pub struct TcpWorker {
    config: Config,
    /// Defined with the configuration (one series); the per-route counters on first use.
    unmatched: Option<u32>,
    /// `[route][backend][reason]`
    connections: CounterTable<{ TcpReason::ALL.len() }>,
    rng: Cell<Rng>,
}

impl TcpWorker {
    pub fn new(proxy: &impl Proxy, config: Config, rng: Rng) -> Self {
        TcpWorker {
            unmatched: define(proxy, MetricKind::Counter, TCP_UNMATCHED),
            connections: CounterTable::new(config.tcp_routes.iter().map(|r| r.clusters.len())),
            config,
            rng: Cell::new(rng),
        }
    }

    fn count_unmatched(&self, proxy: &impl Proxy) {
        if let Some(id) = self.unmatched {
            proxy.add_metric(id, 1);
        }
    }

    /// Chooses the connection's cluster and sets it for `tcp_proxy`; without a matching route
    /// (or if the proxy refuses the filter state) the connection keeps `tcp_proxy`'s own
    /// cluster and counts as unmatched.
    pub fn on_connection(&self, proxy: &impl Proxy, connection: &impl Connection) {
        let sni = connection
            .property(&["connection", "requested_server_name"])
            .unwrap_or_default();
        let Some(route_index) = match_route(&self.config.tcp_routes, &sni) else {
            self.count_unmatched(proxy);
            return;
        };
        let Some(route) = self.config.tcp_routes.get(route_index) else {
            return;
        };
        let mut rng = self.rng.get();
        let source = || connection.property(&["source", "address"]);
        let (backend, reason) = choose_backend(route, source, &mut rng);
        self.rng.set(rng);
        let Some(cluster) = route.clusters.get(backend) else {
            return;
        };
        let arguments =
            set_filter_state_arguments(TCP_PROXY_CLUSTER, cluster, LifeSpan::FilterChain);
        if let Err(refused) = connection.set_filter_state(&arguments) {
            log::warn!("split-mirror: cannot set {TCP_PROXY_CLUSTER} to {cluster}: {refused}");
            self.count_unmatched(proxy);
            return;
        }
        let id = self
            .connections
            .id(route_index, backend, reason.index(), || {
                let name = tcp_connection_counter(&route.name, cluster, reason);
                define(proxy, MetricKind::Counter, &name)
            });
        if let Some(id) = id {
            proxy.add_metric(id, 1);
        }
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
