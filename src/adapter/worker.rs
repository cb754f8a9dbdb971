//! One worker's state (a VM is one worker thread) for one configuration, shared by the root
//! context and its HTTP contexts.

use super::compare::Comparisons;
use super::counters::Counters;
use super::wasm_proxy::WasmProxy;
use crate::compare::pending::Ready;
use crate::config::Config;
use crate::metrics::MirrorOutcome;
use crate::mirror::{InFlight, Shadow, Skip};
use crate::proxy::Proxy;
use crate::random::Rng;
use crate::rollout::state::{Rollouts, ROLLOUT_TICK};
use crate::routing::Reason;
use proxy_wasm::hostcalls;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// How soon the root context sends queued shadows. Sending from the root (not the request's
/// context) makes the host report every shadow's end to a context that outlives the request, so
/// the in-flight cap counts exactly.
const OUTBOX_TICK: Duration = Duration::from_millis(1);

/// Ticks without a shadow before the tick stops (one second).
const IDLE_TICKS_BEFORE_STOP: u32 = 1000;

/// Compiled once in `on_configure`; HTTP contexts hold an `Rc` of it, never a copy.
pub struct Worker {
    pub config: Config,
    counters: Counters,
    /// Per-worker rollout state (steps, guard windows, aborts).
    pub rollouts: Rollouts,
    /// Shadow answers waiting to be compared with the primary's.
    pub comparisons: Comparisons,
    /// Shadows this worker has in flight (a VM is one worker thread).
    in_flight: RefCell<InFlight>,
    /// Shadows waiting for the root context's next tick.
    outbox: RefCell<Vec<Shadow>>,
    tick_running: Cell<bool>,
    idle_ticks: Cell<u32>,
    /// Change of the in-flight gauge not yet published.
    in_flight_delta: Cell<i64>,
    rng: Cell<Rng>,
}

impl Worker {
    pub fn new(config: Config) -> Self {
        Worker {
            counters: Counters::new(&config),
            rollouts: Rollouts::new(&WasmProxy, &config, WasmProxy.now_ms()),
            comparisons: Comparisons::new(config.max_shadows_in_flight),
            in_flight: RefCell::new(InFlight::new(config.max_shadows_in_flight)),
            outbox: RefCell::new(Vec::new()),
            tick_running: Cell::new(false),
            idle_ticks: Cell::new(0),
            in_flight_delta: Cell::new(0),
            config,
            rng: Cell::new(Rng::from_entropy()),
        }
    }

    /// Counts a request routed to `backend` of `route` for `reason`.
    pub fn count_request(&self, route: usize, backend: usize, reason: Reason) {
        self.counters.request(&self.config, route, backend, reason);
    }

    /// Counts a request no route matched.
    pub fn count_unmatched(&self) {
        self.counters.unmatched.increment();
    }

    /// Counts what happened to a request for `mirror` of `route`.
    pub fn count_mirror(&self, route: usize, mirror: usize, outcome: MirrorOutcome) {
        self.counters.mirror(&self.config, route, mirror, outcome);
    }

    /// Runs `draw` with this VM's generator (a VM is single-threaded: one generator per worker).
    pub fn with_rng<T>(&self, draw: impl FnOnce(&mut Rng) -> T) -> T {
        let mut rng = self.rng.get();
        let result = draw(&mut rng);
        self.rng.set(rng);
        result
    }

    /// Queues a shadow for the root context to send, unless the in-flight cap is reached;
    /// false if it was not queued (and counted why).
    pub fn enqueue(&self, shadow: Shadow) -> bool {
        let mut outbox = self.outbox.borrow_mut();
        if !self.in_flight.borrow().has_room(outbox.len()) {
            let skip = MirrorOutcome::Skipped(Skip::InFlightCap);
            self.count_mirror(shadow.route, shadow.mirror, skip);
            return false;
        }
        if !self.tick_running.get() {
            // Wakes the root context (the tick belongs to the request's root).
            if let Err(status) = hostcalls::set_tick_period(OUTBOX_TICK) {
                log::warn!("split-mirror: cannot schedule mirroring ({status:?})");
                let failed = MirrorOutcome::DispatchFailed;
                self.count_mirror(shadow.route, shadow.mirror, failed);
                return false;
            }
            self.tick_running.set(true);
        }
        outbox.push(shadow);
        true
    }

    /// Takes every queued shadow (on the root's tick) and forgets shadows past their timeout.
    /// After a second without shadows the tick stops until the next one is queued, so an idle
    /// worker is not woken every millisecond, and a busy one does not re-arm a timer per batch.
    pub fn take_outbox(&self, now_ms: u64) -> Vec<Shadow> {
        let expired = self.in_flight.borrow_mut().expire(now_ms);
        self.in_flight_delta
            .set(self.in_flight_delta.get() - expired as i64);
        for late in self.comparisons.pending.borrow_mut().expire(now_ms) {
            self.report(&late, now_ms);
        }
        let shadows = std::mem::take(&mut *self.outbox.borrow_mut());
        // Pending comparisons keep the tick alive: their deadlines are checked here.
        if shadows.is_empty() && self.comparisons.pending.borrow().is_empty() {
            self.idle_ticks.set(self.idle_ticks.get() + 1);
            if self.idle_ticks.get() >= IDLE_TICKS_BEFORE_STOP {
                let _ = hostcalls::set_tick_period(self.idle_tick_period());
                self.tick_running.set(false);
                self.idle_ticks.set(0);
            }
        } else {
            self.idle_ticks.set(0);
        }
        shadows
    }

    /// Counts (and maybe logs) a comparison that has every answer, or has given up waiting.
    pub fn report(&self, ready: &Ready, now_ms: u64) {
        let Some(route) = self.config.routes.get(ready.route) else {
            return;
        };
        let Some(mirror) = route.mirrors.get(ready.mirror) else {
            return;
        };
        if let Some(compare) = &mirror.compare {
            self.comparisons
                .report(ready, &route.name, &mirror.cluster, compare, now_ms);
        }
    }

    /// The tick without shadows to send: none, or the rollouts' one-second tick.
    pub fn idle_tick_period(&self) -> Duration {
        if self.rollouts.any {
            ROLLOUT_TICK
        } else {
            Duration::ZERO
        }
    }

    pub fn shadow_started(&self, token: u32, deadline_ms: u64) {
        self.in_flight.borrow_mut().started(token, deadline_ms);
        self.in_flight_delta.set(self.in_flight_delta.get() + 1);
    }

    pub fn shadow_finished(&self, token: u32) {
        if self.in_flight.borrow_mut().finished(token) {
            self.in_flight_delta.set(self.in_flight_delta.get() - 1);
            if !self.tick_running.get() {
                self.flush_in_flight_gauge();
            }
        }
    }

    /// Publishes the in-flight changes since the last flush: one host call per tick, not two
    /// per shadow.
    pub fn flush_in_flight_gauge(&self) {
        let delta = self.in_flight_delta.replace(0);
        if delta != 0 {
            self.counters.shadows_in_flight.add(delta);
        }
    }
}
