//! The per-worker state of rollouts: the cached step of each route, the guard's window, and
//! whether the rollout is aborted; and the host calls they need (the clock, the shared data
//! that carries an abort to the other workers and across reconfigurations and VM reloads).
//!
//! Each worker judges the canary on the responses it saw itself; the first worker whose window
//! breaks the rule aborts, writes the abort into the host's shared data, and the others read
//! it on their next one-second tick.

use super::rollout_metrics::RolloutMetrics;
use crate::config::{Config, Route};
use crate::rollout::guard::{StatusClass, Window};
use crate::rollout::{decimal, percent_text, StepClock};
use crate::routing::Split;
use proxy_wasm::hostcalls;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// How often each worker reads aborts from shared data and publishes the gauges.
pub const ROLLOUT_TICK: Duration = Duration::from_secs(1);

const ABORTED: &[u8] = b"aborted";

/// The state of every route of one configuration, indexed like `config.routes`.
pub struct Rollouts {
    routes: Vec<Option<RouteRollout>>,
    /// Some route has a rollout: the root context ticks every second.
    pub any: bool,
    next_tick_ms: Cell<i64>,
}

struct RouteRollout {
    clock: Cell<StepClock>,
    aborted: Cell<bool>,
    /// `Some` with a guard.
    window: RefCell<Option<Window>>,
    /// The shared-data key of this rollout's abort (route name and fingerprint).
    shared_key: String,
    metrics: RolloutMetrics,
}

impl Rollouts {
    /// Defines the metrics and reads aborts already recorded for these exact rollouts.
    pub fn new(config: &Config) -> Rollouts {
        let routes: Vec<Option<RouteRollout>> = config
            .routes
            .iter()
            .map(|route| {
                let rollout = route.rollout.as_ref()?;
                let shared_key = format!(
                    "split_mirror.rollout_aborted;route={};{:016x}",
                    route.name, rollout.fingerprint
                );
                let state = RouteRollout {
                    clock: Cell::new(StepClock::default()),
                    aborted: Cell::new(
                        rollout.guard.is_some() && is_aborted_in_shared_data(&shared_key),
                    ),
                    window: RefCell::new(rollout.guard.as_ref().map(|g| Window::new(g.window_s))),
                    shared_key,
                    metrics: RolloutMetrics::define(route),
                };
                if state.aborted.get() {
                    log::info!(
                        "split-mirror: route \"{}\": rollout stays aborted (the same rollout was \
                         aborted before this configuration)",
                        route.name
                    );
                }
                Some(state)
            })
            .collect();
        let any = routes.iter().any(Option::is_some);
        let rollouts = Rollouts {
            routes,
            any,
            next_tick_ms: Cell::new(i64::MIN),
        };
        rollouts.publish_all(config);
        rollouts
    }

    /// The weights for a request on `route` at `now_ms` (from [`now_ms`]).
    pub fn split<'c>(&self, index: usize, route: &'c Route, now_ms: i64) -> Split<'c> {
        let (Some(rollout), Some(Some(state))) = (&route.rollout, self.routes.get(index)) else {
            return route.split(0, false);
        };
        let step = if rollout.steps.is_empty() {
            0
        } else {
            let mut clock = state.clock.get();
            let step = clock.step_at(rollout, now_ms);
            if step != state.clock.get().step() {
                // A boundary crossed: the gauges follow now, not at the next tick.
                let aborted = state.aborted.get();
                let share = rollout.canary_share(step, aborted);
                state.metrics.publish(step, share, aborted);
            }
            state.clock.set(clock);
            step
        };
        route.split(step, state.aborted.get())
    }

    /// Counts a response of `backend` on route `index` (a route with a rollout), and applies
    /// the guard. `now` is the request's time (ms): one clock read per request, and a response
    /// counts in the window's second its request arrived in.
    pub fn response(
        &self,
        config: &Config,
        (index, backend): (usize, usize),
        class: StatusClass,
        now: i64,
    ) {
        let (Some(route), Some(Some(state))) = (config.routes.get(index), self.routes.get(index))
        else {
            return;
        };
        state.metrics.response(backend, class);
        let Some(rollout) = &route.rollout else {
            return;
        };
        let Some(guard) = &rollout.guard else {
            return;
        };
        let mut window = state.window.borrow_mut();
        let Some(window) = window.as_mut() else {
            return;
        };
        let is_canary = backend == rollout.canary;
        window.record(now, is_canary, class);
        if !is_canary || state.aborted.get() {
            return;
        }
        let (canary, others) = window.totals(now);
        if !guard.should_abort(canary, others) {
            return;
        }
        state.aborted.set(true);
        if let Err(status) = hostcalls::set_shared_data(&state.shared_key, Some(ABORTED), None) {
            log::warn!(
                "split-mirror: route \"{}\": cannot share the abort with other workers: {status:?}",
                route.name
            );
        }
        let canary_name = route
            .backends
            .get(rollout.canary)
            .map_or("", |b| b.cluster.as_str());
        log::warn!(
            "split-mirror: route \"{}\": rollout aborted: canary \"{canary_name}\" answered 5xx \
             to {} of {} requests ({} %) in the last {} s, above max_error_rate {} and the \
             other backends' {} of {} ({} %); the canary now gets weight 0",
            route.name,
            canary.server_errors,
            canary.responses,
            percent_text(canary.server_errors, canary.responses),
            guard.window_s,
            decimal(guard.max_error_rate_millionths, 6),
            others.server_errors,
            others.responses,
            percent_text(others.server_errors, others.responses),
        );
        state.metrics.publish(state.clock.get().step(), 0, true);
    }

    /// On the root context's tick (at most once a second): aborts decided by other workers.
    pub fn on_tick(&self, config: &Config) {
        if !self.any {
            return;
        }
        let now = now_ms();
        if now < self.next_tick_ms.get() {
            return;
        }
        self.next_tick_ms.set(now + ROLLOUT_TICK.as_millis() as i64);
        for (route, state) in config.routes.iter().zip(&self.routes) {
            let (Some(rollout), Some(state)) = (&route.rollout, state) else {
                continue;
            };
            if !state.aborted.get()
                && rollout.guard.is_some()
                && is_aborted_in_shared_data(&state.shared_key)
            {
                state.aborted.set(true);
                state.metrics.publish(state.clock.get().step(), 0, true);
            }
        }
    }

    /// Computes each route's step now and publishes the gauges. The gauges are then published
    /// only when something changes (a step boundary seen by a request, an abort), never on a
    /// timer: the root contexts of a replaced configuration live on while their listener
    /// drains, and must not overwrite the gauges of the configuration in force.
    fn publish_all(&self, config: &Config) {
        let now = now_ms();
        for (route, state) in config.routes.iter().zip(&self.routes) {
            let (Some(rollout), Some(state)) = (&route.rollout, state) else {
                continue;
            };
            let aborted = state.aborted.get();
            let mut clock = state.clock.get();
            let step = clock.step_at(rollout, now);
            state.clock.set(clock);
            state
                .metrics
                .publish(step, rollout.canary_share(step, aborted), aborted);
        }
    }
}

fn is_aborted_in_shared_data(key: &str) -> bool {
    matches!(hostcalls::get_shared_data(key), Ok((Some(value), _)) if value == ABORTED)
}

/// Milliseconds since the epoch by the host's wall clock, signed as the rollout's times are
/// (a `start` may be before 1970).
pub fn now_ms() -> i64 {
    i64::try_from(super::host::host_now_ms()).unwrap_or(i64::MAX)
}
