//! The filter's request and mirror stats of one worker. The per-route counters are defined on
//! their first increment (`metrics::CounterTable`); the two single series are defined with the
//! configuration, so they read 0 rather than being absent (one series each, whatever the
//! configuration's size).

use crate::config::Config;
use crate::metrics::{
    mirror_counter, request_counter, CounterTable, MirrorOutcome, SHADOWS_IN_FLIGHT, UNMATCHED,
};
use crate::proxy::metric::define;
use crate::proxy::{MetricKind, Proxy};
use crate::routing::Reason;

/// Every request and mirror stat of one configuration in one worker.
pub struct Counters {
    /// Requests no route matched.
    unmatched: Option<u32>,
    /// Gauge: shadows this proxy has dispatched and not yet seen finish (all workers).
    shadows_in_flight: Option<u32>,
    /// `[route][backend][reason]`
    requests: CounterTable<{ Reason::ALL.len() }>,
    /// `[route][mirror][outcome]`
    mirror: CounterTable<{ MirrorOutcome::ALL.len() }>,
}

impl Counters {
    /// Defines the single series; the per-route counters wait for their first increment.
    pub fn new(proxy: &impl Proxy, config: &Config) -> Counters {
        Counters {
            unmatched: define(proxy, MetricKind::Counter, UNMATCHED),
            shadows_in_flight: define(proxy, MetricKind::Gauge, SHADOWS_IN_FLIGHT),
            requests: CounterTable::new(config.routes.iter().map(|r| r.backends.len())),
            mirror: CounterTable::new(config.routes.iter().map(|r| r.mirrors.len())),
        }
    }

    pub fn unmatched(&self, proxy: &impl Proxy) {
        if let Some(id) = self.unmatched {
            proxy.add_metric(id, 1);
        }
    }

    /// Moves the in-flight gauge by `delta`.
    pub fn shadows_in_flight(&self, proxy: &impl Proxy, delta: i64) {
        if let (Some(id), true) = (self.shadows_in_flight, delta != 0) {
            proxy.add_metric(id, delta);
        }
    }

    /// Counts a request routed to `backend` of `route` for `reason`.
    pub fn request(
        &self,
        proxy: &impl Proxy,
        config: &Config,
        (route, backend): (usize, usize),
        reason: Reason,
    ) {
        let id = self.requests.id(route, backend, reason.index(), || {
            let route = config.routes.get(route)?;
            let cluster = &route.backends.get(backend)?.cluster;
            let name = request_counter(&route.name, cluster, reason);
            define(proxy, MetricKind::Counter, &name)
        });
        if let Some(id) = id {
            proxy.add_metric(id, 1);
        }
    }

    /// Counts what happened to a request for `mirror` of `route`.
    pub fn mirror(
        &self,
        proxy: &impl Proxy,
        config: &Config,
        (route, mirror): (usize, usize),
        outcome: MirrorOutcome,
    ) {
        let id = self.mirror.id(route, mirror, outcome.index(), || {
            let route = config.routes.get(route)?;
            let cluster = &route.mirrors.get(mirror)?.cluster;
            let name = mirror_counter(&route.name, cluster, outcome);
            define(proxy, MetricKind::Counter, &name)
        });
        if let Some(id) = id {
            proxy.add_metric(id, 1);
        }
    }
}
