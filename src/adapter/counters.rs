//! Envoy stats through proxy-wasm metrics: defined once per configuration, then incremented by
//! id. A definition the host refuses becomes a no-op counter, never a panic.

use crate::config::{Config, Route};
use crate::metrics::{
    mirror_counter, request_counter, MirrorOutcome, SHADOWS_IN_FLIGHT, UNMATCHED,
};
use crate::routing::Reason;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A defined counter, or `None` if the host refused the definition.
#[derive(Clone, Copy, Debug)]
pub struct Counter(Option<u32>);

impl Counter {
    pub(super) fn define(name: &str) -> Counter {
        Counter::define_as(MetricType::Counter, name)
    }

    fn define_as(kind: MetricType, name: &str) -> Counter {
        match hostcalls::define_metric(kind, name) {
            Ok(id) => Counter(Some(id)),
            Err(status) => {
                log::warn!("split-mirror: cannot define metric {name}: {status:?}");
                Counter(None)
            }
        }
    }

    pub fn increment(self) {
        self.add(1);
    }

    /// Adds `delta` (gauges may go down).
    pub fn add(self, delta: i64) {
        if let Some(id) = self.0 {
            // Stats are best effort: a failed increment must not disturb the request.
            let _ = hostcalls::increment_metric(id, delta);
        }
    }
}

/// Every counter of one configuration, indexed like the config.
pub struct Counters {
    /// Requests no route matched.
    pub unmatched: Counter,
    /// `[route][backend][reason]`
    requests: Vec<Vec<[Counter; Reason::ALL.len()]>>,
    /// Gauge: shadows this proxy has dispatched and not yet seen finish (all workers).
    pub shadows_in_flight: Counter,
    /// `[route][mirror][outcome]`
    mirror: Vec<Vec<[Counter; MirrorOutcome::ALL.len()]>>,
}

impl Counters {
    pub fn define(config: &Config) -> Counters {
        Counters {
            unmatched: Counter::define(UNMATCHED),
            requests: per_route(
                config,
                |route| route.backends.iter().map(|b| b.cluster.as_str()).collect(),
                Reason::ALL,
                request_counter,
            ),
            shadows_in_flight: Counter::define_as(MetricType::Gauge, SHADOWS_IN_FLIGHT),
            mirror: per_route(
                config,
                |route| route.mirrors.iter().map(|m| m.cluster.as_str()).collect(),
                MirrorOutcome::ALL,
                mirror_counter,
            ),
        }
    }

    pub fn request(&self, route: usize, backend: usize, reason: Reason) {
        if let Some(counters) = self.requests.get(route).and_then(|r| r.get(backend)) {
            counters[reason.index()].increment();
        }
    }

    pub fn mirror(&self, route: usize, mirror: usize, outcome: MirrorOutcome) {
        if let Some(counters) = self.mirror.get(route).and_then(|r| r.get(mirror)) {
            counters[outcome.index()].increment();
        }
    }
}

/// `[route][cluster][kind]` counters: for each route, each of its `clusters` (backends or
/// mirrors), one counter per kind, named by `name(route, cluster, kind)`.
fn per_route<K: Copy, const N: usize>(
    config: &Config,
    clusters: impl Fn(&Route) -> Vec<&str>,
    kinds: [K; N],
    name: impl Fn(&str, &str, K) -> String,
) -> Vec<Vec<[Counter; N]>> {
    config
        .routes
        .iter()
        .map(|route| {
            clusters(route)
                .into_iter()
                .map(|cluster| kinds.map(|kind| Counter::define(&name(&route.name, cluster, kind))))
                .collect()
        })
        .collect()
}
