//! One worker's network filter: per connection, read the SNI (and for a sticky route the
//! client's address), choose the cluster, hand it to `tcp_proxy`, and count. Plain logic over
//! [`Proxy`] and [`Connection`].

use super::filter_state::{set_filter_state_arguments, LifeSpan, TCP_PROXY_CLUSTER};
use super::{choose_backend_at, match_route, TcpReason};
use crate::config::{Config, TcpRoute};
use crate::metrics::{tcp_connection_counter, CounterTable, TCP_UNMATCHED};
use crate::proxy::metric::define;
use crate::proxy::{MetricKind, Proxy, Refused};
use crate::random::Rng;
use crate::rollout::state::{abort_key, is_aborted_in_shared_data, ROLLOUT_TICK};
use crate::rollout::StepClock;
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
    /// `[route]`: the state of each route's rollout (`None` without one).
    rollouts: Vec<Option<TcpRolloutState>>,
    rng: Cell<Rng>,
}

/// One route's rollout on this worker: the cached step, and with `follow` the followed HTTP
/// route's abort, read from shared data at most once per [`ROLLOUT_TICK`], on a connection.
struct TcpRolloutState {
    clock: Cell<StepClock>,
    aborted: Cell<bool>,
    next_read_ms: Cell<u64>,
    /// The followed rollout's abort key (`None` without `follow`).
    follow_key: Option<String>,
}

impl TcpRolloutState {
    fn new(config: &Config, route: &TcpRoute) -> Option<TcpRolloutState> {
        let rollout = route.rollout.as_ref()?;
        let follow_key = rollout
            .follow
            .and_then(|index| config.routes.get(index))
            .and_then(|http| Some(abort_key(&http.name, http.rollout.as_ref()?.fingerprint)));
        Some(TcpRolloutState {
            clock: Cell::new(StepClock::default()),
            aborted: Cell::new(false),
            next_read_ms: Cell::new(0),
            follow_key,
        })
    }

    /// The step in force at `now_ms`, and whether the followed route is aborted.
    fn at(&self, proxy: &impl Proxy, route: &TcpRoute, now_ms: u64) -> (usize, bool) {
        let Some(rollout) = &route.rollout else {
            return (0, false);
        };
        let mut clock = self.clock.get();
        let step = clock.step_at(&rollout.schedule, i64::try_from(now_ms).unwrap_or(i64::MAX));
        self.clock.set(clock);
        if let Some(key) = &self.follow_key {
            if !self.aborted.get() && now_ms >= self.next_read_ms.get() {
                self.next_read_ms
                    .set(now_ms + ROLLOUT_TICK.as_millis() as u64);
                if is_aborted_in_shared_data(proxy, key) {
                    self.aborted.set(true);
                    log::info!(
                        "split-mirror: tcp_route \"{}\": the followed rollout was aborted; new \
                         connections no longer go to the canary",
                        route.name
                    );
                }
            }
        }
        (step, self.aborted.get())
    }
}

impl TcpWorker {
    pub fn new(proxy: &impl Proxy, config: Config, rng: Rng) -> Self {
        TcpWorker {
            unmatched: define(proxy, MetricKind::Counter, TCP_UNMATCHED),
            connections: CounterTable::new(config.tcp_routes.iter().map(|r| r.clusters.len())),
            rollouts: config
                .tcp_routes
                .iter()
                .map(|route| TcpRolloutState::new(&config, route))
                .collect(),
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
        // One clock read per connection, and only on routes with a rollout.
        let (step, aborted) = match self.rollouts.get(route_index) {
            Some(Some(state)) => state.at(proxy, route, proxy.now_ms()),
            _ => (0, false),
        };
        let mut rng = self.rng.get();
        let source = || connection.property(&["source", "address"]);
        let (backend, reason) = choose_backend_at(route, step, aborted, source, &mut rng);
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
