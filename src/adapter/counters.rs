//! Envoy stats through proxy-wasm metrics. The per-route counters are defined on their first
//! increment (`metrics::CounterTable`), then incremented by id; the two single metrics are
//! defined with the configuration. A definition the host refuses becomes a no-op counter, never a
//! panic.

use crate::config::Config;
use crate::metrics::{
    mirror_counter, request_counter, CounterTable, MirrorOutcome, SHADOWS_IN_FLIGHT, UNMATCHED,
};
use crate::routing::Reason;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A metric defined with the configuration, or `None` if the host refused the definition.
#[derive(Clone, Copy, Debug)]
pub struct Counter(Option<u32>);

impl Counter {
    pub(super) fn define(name: &str) -> Counter {
        Counter::define_as(MetricType::Counter, name)
    }

    fn define_as(kind: MetricType, name: &str) -> Counter {
        Counter(define(kind, name))
    }

    pub fn increment(self) {
        self.add(1);
    }

    /// Adds `delta` (gauges may go down).
    pub fn add(self, delta: i64) {
        add(self.0, delta);
    }
}

/// The host's id for a new metric, or `None` (logged) if it refuses.
fn define(kind: MetricType, name: &str) -> Option<u32> {
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("split-mirror: cannot define metric {name}: {status:?}");
            None
        }
    }
}

fn add(id: Option<u32>, delta: i64) {
    if let Some(id) = id {
        // Stats are best effort: a failed increment must not disturb the request.
        let _ = hostcalls::increment_metric(id, delta);
    }
}

/// Every metric of one configuration in this worker.
pub struct Counters {
    /// Requests no route matched.
    pub unmatched: Counter,
    /// Gauge: shadows this proxy has dispatched and not yet seen finish (all workers).
    pub shadows_in_flight: Counter,
    /// `[route][backend][reason]`
    requests: CounterTable<{ Reason::ALL.len() }>,
    /// `[route][mirror][outcome]`
    mirror: CounterTable<{ MirrorOutcome::ALL.len() }>,
}

impl Counters {
    /// Defines the single metrics; the per-route counters wait for their first increment.
    pub fn new(config: &Config) -> Counters {
        Counters {
            unmatched: Counter::define_as(MetricType::Counter, UNMATCHED),
            shadows_in_flight: Counter::define_as(MetricType::Gauge, SHADOWS_IN_FLIGHT),
            requests: CounterTable::new(config.routes.iter().map(|r| r.backends.len())),
            mirror: CounterTable::new(config.routes.iter().map(|r| r.mirrors.len())),
        }
    }

    /// Counts a request routed to `backend` of `route` for `reason`.
    pub fn request(&self, config: &Config, route: usize, backend: usize, reason: Reason) {
        let id = self.requests.id(route, backend, reason.index(), || {
            let route = config.routes.get(route)?;
            let cluster = &route.backends.get(backend)?.cluster;
            let name = request_counter(&route.name, cluster, reason);
            define(MetricType::Counter, &name)
        });
        add(id, 1);
    }

    /// Counts what happened to a request for `mirror` of `route`.
    pub fn mirror(&self, config: &Config, route: usize, mirror: usize, outcome: MirrorOutcome) {
        let id = self.mirror.id(route, mirror, outcome.index(), || {
            let route = config.routes.get(route)?;
            let cluster = &route.mirrors.get(mirror)?.cluster;
            let name = mirror_counter(&route.name, cluster, outcome);
            define(MetricType::Counter, &name)
        });
        add(id, 1);
    }
}
