//! The rollout's metrics: responses by status class per backend, and the step, canary share
//! and abort gauges. Kept apart from `counters.rs`; a definition the host refuses becomes a
//! no-op metric, never a panic.

use crate::config::Route;
use crate::metrics::{
    responses_counter, rollout_aborted_gauge, rollout_canary_weight_gauge, rollout_step_gauge,
};
use crate::rollout::guard::StatusClass;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A defined metric, or `None` if the host refused the definition.
#[derive(Clone, Copy, Debug)]
struct Metric(Option<u32>);

impl Metric {
    fn define(kind: MetricType, name: &str) -> Metric {
        match hostcalls::define_metric(kind, name) {
            Ok(id) => Metric(Some(id)),
            Err(status) => {
                log::warn!("split-mirror: cannot define metric {name}: {status:?}");
                Metric(None)
            }
        }
    }

    fn increment(self) {
        if let Some(id) = self.0 {
            // Stats are best effort: a failed increment must not disturb the request.
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn set(self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// The metrics of one route with a rollout.
pub struct RolloutMetrics {
    /// `[backend][class]`
    responses: Vec<[Metric; StatusClass::ALL.len()]>,
    step: Metric,
    canary_weight: Metric,
    aborted: Metric,
}

impl RolloutMetrics {
    pub fn define(route: &Route) -> RolloutMetrics {
        let gauge = |name: String| Metric::define(MetricType::Gauge, &name);
        RolloutMetrics {
            responses: route
                .backends
                .iter()
                .map(|backend| {
                    StatusClass::ALL.map(|class| {
                        Metric::define(
                            MetricType::Counter,
                            &responses_counter(&route.name, &backend.cluster, class),
                        )
                    })
                })
                .collect(),
            step: gauge(rollout_step_gauge(&route.name)),
            canary_weight: gauge(rollout_canary_weight_gauge(&route.name)),
            aborted: gauge(rollout_aborted_gauge(&route.name)),
        }
    }

    pub fn response(&self, backend: usize, class: StatusClass) {
        if let Some(counters) = self.responses.get(backend) {
            counters[class.index()].increment();
        }
    }

    /// Every worker records the same values (they compute the same step from the clock).
    pub fn publish(&self, step: usize, canary_share: u32, aborted: bool) {
        self.step.set(step as u64);
        self.canary_weight.set(u64::from(canary_share));
        self.aborted.set(u64::from(aborted));
    }
}
