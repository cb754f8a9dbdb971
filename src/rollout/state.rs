//! One worker's state of the rollouts of one configuration: each route's cached step, the
//! guard's window of answers, and whether the rollout is aborted; and what it asks of the
//! proxy (shared data that carries an abort to the other workers and across
//! reconfigurations and VM reloads, the rollout's stats).
//!
//! Each worker judges the canary on the answers it saw itself (the sequential tests of
//! `cusum.rs`); the first worker whose test fires aborts, writes the abort into the proxy's shared data, and the others read
//! it on their next tick (at most once a second). The shared key holds the rollout section's
//! fingerprint: a reconfiguration that keeps the section keeps the abort, one that changes it
//! starts afresh.

use super::guard::{Abort, AbortReason, Answer, Guard, GuardState, StatusClass, Window};
use super::{decimal, percent_text, StepClock, FULL_SHARE};
use crate::config::{Config, Route};
use crate::metrics::{
    responses_counter, rollout_aborted_gauge, rollout_aborts_counter, rollout_canary_weight_gauge,
    rollout_step_gauge, slow_responses_counter,
};
use crate::proxy::metric::LazyMetric;
use crate::proxy::{MetricKind, Proxy};
use crate::routing::Split;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// How often each worker reads aborts from shared data.
pub const ROLLOUT_TICK: Duration = Duration::from_secs(1);

/// The shared-data value of an aborted rollout.
pub const ABORTED: &[u8] = b"aborted";

/// The state of every route of one configuration, indexed like `config.routes`.
pub struct Rollouts {
    routes: Vec<Option<RouteRollout>>,
    /// Some route has a rollout: the root context ticks every second.
    pub any: bool,
    next_tick_ms: Cell<u64>,
}

/// One worker's state of one route's rollout.
pub struct RouteRollout {
    clock: Cell<StepClock>,
    aborted: Cell<bool>,
    /// `Some` with a guard: its sequential tests, and the window of counts an abort reports.
    guard: RefCell<Option<(GuardState, Window)>>,
    /// The shared-data key of this rollout's abort (route name and fingerprint).
    shared_key: String,
    metrics: RolloutMetrics,
}

impl Rollouts {
    /// Reads aborts already recorded for these exact rollouts, and publishes each route's step.
    pub fn new(proxy: &impl Proxy, config: &Config, now_ms: u64) -> Rollouts {
        let routes: Vec<Option<RouteRollout>> = config
            .routes
            .iter()
            .map(|route| RouteRollout::new(proxy, route, now_ms))
            .collect();
        let any = routes.iter().any(Option::is_some);
        Rollouts {
            routes,
            any,
            next_tick_ms: Cell::new(0),
        }
    }

    /// Route `index`'s state, `None` without a rollout.
    pub fn route(&self, index: usize) -> Option<&RouteRollout> {
        self.routes.get(index)?.as_ref()
    }

    /// The weights for a request on route `index` at `now_ms`.
    #[inline(always)]
    pub fn split<'c>(
        &self,
        proxy: &impl Proxy,
        index: usize,
        route: &'c Route,
        now_ms: u64,
    ) -> Split<'c> {
        match self.route(index) {
            Some(state) => state.split(proxy, route, now_ms),
            None => route.split(0, false),
        }
    }

    /// An answer of `backend` on route `index` with HTTP `status`; `timing` is its request's
    /// time and, on routes whose guard times answers, when its response headers came.
    pub fn record_answer(
        &self,
        proxy: &impl Proxy,
        config: &Config,
        (index, backend): (usize, usize),
        status: u16,
        timing: (u64, Option<u64>),
    ) {
        if let (Some(route), Some(state)) = (config.routes.get(index), self.route(index)) {
            state.record_answer(proxy, route, backend, status, timing);
        }
    }

    /// On the root context's tick: at most once per [`ROLLOUT_TICK`], reads the aborts other
    /// workers decided.
    pub fn tick(&self, proxy: &impl Proxy, config: &Config, now_ms: u64) {
        if !self.any || now_ms < self.next_tick_ms.get() {
            return;
        }
        self.next_tick_ms
            .set(now_ms + ROLLOUT_TICK.as_millis() as u64);
        for (route, state) in config.routes.iter().zip(&self.routes) {
            if let Some(state) = state {
                state.tick(proxy, route);
            }
        }
    }
}

impl RouteRollout {
    /// `None` for a route without a rollout. Computes the step now and publishes the gauges.
    /// The gauges are then published only when something changes (a step boundary seen by a
    /// request, an abort), never on a timer: the root contexts of a replaced configuration
    /// live on while their listener drains, and must not overwrite the gauges of the
    /// configuration in force.
    pub fn new(proxy: &impl Proxy, route: &Route, now_ms: u64) -> Option<RouteRollout> {
        let rollout = route.rollout.as_ref()?;
        let shared_key = abort_key(&route.name, rollout.fingerprint);
        let aborted = rollout.guard.is_some() && is_aborted_in_shared_data(proxy, &shared_key);
        if aborted {
            log::info!(
                "split-mirror: route \"{}\": rollout stays aborted (the same rollout was \
                 aborted before this configuration)",
                route.name
            );
        }
        let mut clock = StepClock::default();
        let step = clock.step_at(rollout, signed(now_ms));
        let state = RouteRollout {
            clock: Cell::new(clock),
            aborted: Cell::new(aborted),
            guard: RefCell::new(
                rollout
                    .guard
                    .as_ref()
                    .map(|g| (GuardState::default(), Window::new(g.window_s))),
            ),
            shared_key,
            metrics: RolloutMetrics::new(route.backends.len()),
        };
        let share = rollout.canary_share(step, aborted);
        state.metrics.publish(proxy, route, step, share, aborted);
        Some(state)
    }

    /// Whether this worker knows the rollout is aborted.
    pub fn is_aborted(&self) -> bool {
        self.aborted.get()
    }

    /// The step of the last request or tick (0 before start).
    pub fn step(&self) -> usize {
        self.clock.get().step()
    }

    /// The shared-data key that carries this rollout's abort.
    pub fn shared_key(&self) -> &str {
        &self.shared_key
    }

    /// The weights for a request at `now_ms`.
    pub fn split<'c>(&self, proxy: &impl Proxy, route: &'c Route, now_ms: u64) -> Split<'c> {
        let Some(rollout) = &route.rollout else {
            return route.split(0, false);
        };
        let step = if rollout.steps.is_empty() {
            0
        } else {
            let mut clock = self.clock.get();
            let step = clock.step_at(rollout, signed(now_ms));
            if step != self.clock.get().step() {
                // A boundary crossed: the gauges follow now, not at the next tick.
                let aborted = self.aborted.get();
                let share = rollout.canary_share(step, aborted);
                self.metrics.publish(proxy, route, step, share, aborted);
            }
            self.clock.set(clock);
            step
        };
        route.split(step, self.aborted.get())
    }

    /// Counts an answer of `backend` with HTTP `status` (`timing`: its request's time, so one
    /// clock read per request and it counts in the window's second its request arrived in;
    /// and when its response headers came, on routes whose guard times answers), and applies
    /// the guard: the first test that fires aborts and publishes the abort.
    pub fn record_answer(
        &self,
        proxy: &impl Proxy,
        route: &Route,
        backend: usize,
        status: u16,
        (requested_ms, answered_ms): (u64, Option<u64>),
    ) {
        let Some(class) = StatusClass::of(status) else {
            return;
        };
        self.metrics.answer(proxy, route, backend, class);
        let Some(rollout) = &route.rollout else {
            return;
        };
        let Some(guard) = &rollout.guard else {
            return;
        };
        let answer = Answer {
            server_error: class == StatusClass::ServerError,
            slow: guard.latency.as_ref().is_some_and(|latency| {
                // Envoy's own timeout (504) came after the limit whatever the clock says.
                status == 504
                    || answered_ms.is_some_and(|at| {
                        at.saturating_sub(requested_ms) > u64::from(latency.max_latency_ms)
                    })
            }),
        };
        if answer.slow {
            self.metrics.slow(proxy, route, backend);
        }
        let mut state = self.guard.borrow_mut();
        let Some((state, window)) = state.as_mut() else {
            return;
        };
        let now = signed(requested_ms);
        window.record_answer(now, backend == rollout.canary, answer);
        if backend != rollout.canary {
            let bad = |b: bool| u64::from(b);
            state.others(guard, now, 1, bad(answer.server_error), bad(answer.slow));
            return;
        }
        if self.aborted.get() {
            return;
        }
        // The weights in force send the others nothing (the last step): judged alone.
        let others_routed = rollout.canary_share(self.step(), false) < FULL_SHARE;
        let Some(abort) = state.canary(guard, now, answer, others_routed) else {
            return;
        };
        self.aborted.set(true);
        if let Err(refused) = proxy.set_shared_data(&self.shared_key, ABORTED, None) {
            log::warn!(
                "split-mirror: route \"{}\": cannot share the abort with other workers: {refused}",
                route.name
            );
        }
        let alone = abort.evidence.others.answers == 0;
        log_abort(route, guard, &abort, window.totals(now), alone);
        self.metrics.abort(proxy, route, abort.reason);
        self.metrics.publish(proxy, route, self.step(), 0, true);
    }

    /// Reads an abort another worker (or an earlier VM) published.
    pub fn tick(&self, proxy: &impl Proxy, route: &Route) {
        let guarded = route.rollout.as_ref().is_some_and(|r| r.guard.is_some());
        if !self.aborted.get() && guarded && is_aborted_in_shared_data(proxy, &self.shared_key) {
            self.aborted.set(true);
            self.metrics.publish(proxy, route, self.step(), 0, true);
        }
    }
}

/// The abort's one log line: which test fired, its evidence, the window's counts.
fn log_abort(
    route: &Route,
    guard: &Guard,
    abort: &Abort,
    (canary, others): (super::guard::Counts, super::guard::Counts),
    alone: bool,
) {
    let Some(rollout) = &route.rollout else {
        return;
    };
    let canary_name = route
        .backends
        .get(rollout.canary)
        .map_or("", |b| b.cluster.as_str());
    let (what, in_window, limit) = match (abort.reason, &guard.latency) {
        (AbortReason::Latency, Some(latency)) => (
            format!("slower than {} ms", latency.max_latency_ms),
            canary.slow,
            format!(
                "max_slow_rate {}",
                decimal(latency.max_slow_rate_millionths, 6)
            ),
        ),
        _ => (
            "5xx".to_string(),
            canary.server_errors,
            format!(
                "max_error_rate {}",
                decimal(guard.max_error_rate_millionths, 6)
            ),
        ),
    };
    let evidence = abort.evidence;
    let compared = if alone {
        "judged alone (the other backends had no live traffic)".to_string()
    } else {
        format!(
            "against the other backends' {} of {} ({} %)",
            evidence.others.bad,
            evidence.others.answers,
            percent_text(evidence.others.bad, evidence.others.answers)
        )
    };
    log::warn!(
        "split-mirror: route \"{}\": rollout aborted ({}): canary \"{canary_name}\" answered {what} \
         to {} of {} requests ({} %) since its evidence began, {compared}; {in_window} of {} in \
         the last {} s (the others {} of {}); judged by {limit} and sensitivity {}; the canary \
         now gets weight 0",
        route.name,
        abort.reason.as_str(),
        evidence.canary.bad,
        evidence.canary.answers,
        percent_text(evidence.canary.bad, evidence.canary.answers),
        canary.responses,
        guard.window_s,
        match abort.reason {
            AbortReason::Latency => others.slow,
            AbortReason::ServerErrors => others.server_errors,
        },
        others.responses,
        decimal((guard.sensitivity * 100.0).round() as u64, 2),
    );
}

/// The shared-data key of a rollout's abort: the route's name and the section's fingerprint
/// (a TCP route that follows an HTTP route reads the same key).
pub fn abort_key(route_name: &str, fingerprint: u64) -> String {
    format!("split_mirror.rollout_aborted;route={route_name};{fingerprint:016x}")
}

/// Whether `key` holds an abort.
pub fn is_aborted_in_shared_data(proxy: &impl Proxy, key: &str) -> bool {
    matches!(proxy.shared_data(key), Ok((Some(value), _)) if value == ABORTED)
}

/// The rollout's times are signed (a `start` may be before 1970).
fn signed(now_ms: u64) -> i64 {
    i64::try_from(now_ms).unwrap_or(i64::MAX)
}

/// The stats of one route with a rollout, each defined on first use: answers by status class
/// per backend, and the step, canary share and abort gauges (published with the
/// configuration, so defined then).
struct RolloutMetrics {
    /// `[backend * classes + class]`
    answers: Vec<LazyMetric>,
    /// `[backend]`: slow answers, on routes whose guard times answers.
    slow: Vec<LazyMetric>,
    /// `[reason]`: aborts decided here.
    aborts: [LazyMetric; AbortReason::ALL.len()],
    step: LazyMetric,
    canary_weight: LazyMetric,
    aborted: LazyMetric,
}

impl RolloutMetrics {
    fn new(backends: usize) -> RolloutMetrics {
        RolloutMetrics {
            answers: vec![LazyMetric::default(); backends * StatusClass::ALL.len()],
            slow: vec![LazyMetric::default(); backends],
            aborts: Default::default(),
            step: LazyMetric::default(),
            canary_weight: LazyMetric::default(),
            aborted: LazyMetric::default(),
        }
    }

    fn answer(&self, proxy: &impl Proxy, route: &Route, backend: usize, class: StatusClass) {
        let index = backend * StatusClass::ALL.len() + class.index();
        let (Some(counter), Some(cluster)) = (self.answers.get(index), route.backends.get(backend))
        else {
            return;
        };
        counter.add(proxy, MetricKind::Counter, 1, || {
            responses_counter(&route.name, &cluster.cluster, class)
        });
    }

    fn slow(&self, proxy: &impl Proxy, route: &Route, backend: usize) {
        let (Some(counter), Some(cluster)) = (self.slow.get(backend), route.backends.get(backend))
        else {
            return;
        };
        counter.add(proxy, MetricKind::Counter, 1, || {
            slow_responses_counter(&route.name, &cluster.cluster)
        });
    }

    fn abort(&self, proxy: &impl Proxy, route: &Route, reason: AbortReason) {
        if let Some(counter) = self.aborts.get(reason.index()) {
            counter.add(proxy, MetricKind::Counter, 1, || {
                rollout_aborts_counter(&route.name, reason)
            });
        }
    }

    /// Every worker records the same values (they compute the same step from the clock).
    fn publish(&self, proxy: &impl Proxy, route: &Route, step: usize, share: u32, aborted: bool) {
        let name = &route.name;
        self.step
            .record(proxy, step as u64, || rollout_step_gauge(name));
        self.canary_weight.record(proxy, u64::from(share), || {
            rollout_canary_weight_gauge(name)
        });
        self.aborted
            .record(proxy, u64::from(aborted), || rollout_aborted_gauge(name));
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
