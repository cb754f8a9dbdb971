//! The worker itself: its configuration, stats, rollouts, comparisons, outbox and generator;
//! counting, and the root context's tick.

use super::counters::Counters;
use crate::compare::results::Comparisons;
use crate::config::Config;
use crate::metrics::MirrorOutcome;
use crate::mirror::outbox::Outbox;
use crate::proxy::Proxy;
use crate::random::Rng;
use crate::rollout::state::{Rollouts, ROLLOUT_TICK};
use crate::routing::Reason;
use std::cell::Cell;
use std::time::Duration;

/// Compiled once per configuration; request contexts hold an `Rc` of it, never a copy.
pub struct Worker {
    pub config: Config,
    pub(super) counters: Counters,
    /// Per-worker rollout state (steps, guard windows, aborts).
    pub rollouts: Rollouts,
    /// Comparisons waiting for their answers, and their counters.
    pub comparisons: Comparisons,
    /// Shadows queued for the root context's tick, and in flight.
    pub outbox: Outbox,
    rng: Cell<Rng>,
}

impl Worker {
    /// `rng`: this worker's generator, seeded once.
    pub fn new(proxy: &impl Proxy, config: Config, rng: Rng) -> Self {
        let rollouts = Rollouts::new(proxy, &config, proxy.now_ms());
        let idle_period = idle_tick_period(&rollouts);
        Worker {
            counters: Counters::new(proxy, &config),
            comparisons: Comparisons::new(config.max_shadows_in_flight),
            outbox: Outbox::new(config.max_shadows_in_flight, idle_period),
            rollouts,
            config,
            rng: Cell::new(rng),
        }
    }

    /// The root context's tick when no shadow is queued.
    pub fn idle_tick_period(&self) -> Duration {
        idle_tick_period(&self.rollouts)
    }

    /// Counts a request routed to `backend` of `route` for `reason`.
    pub fn count_request(&self, proxy: &impl Proxy, route: usize, backend: usize, reason: Reason) {
        self.counters
            .request(proxy, &self.config, (route, backend), reason);
    }

    /// Counts a request no route matched.
    pub fn count_unmatched(&self, proxy: &impl Proxy) {
        self.counters.unmatched(proxy);
    }

    /// Counts what happened to a request for `mirror` of `route`.
    pub fn count_mirror(
        &self,
        proxy: &impl Proxy,
        route: usize,
        mirror: usize,
        outcome: MirrorOutcome,
    ) {
        self.counters
            .mirror(proxy, &self.config, (route, mirror), outcome);
    }

    /// Runs `draw` with this worker's generator (one generator per worker, seeded once).
    pub fn with_rng<T>(&self, draw: impl FnOnce(&mut Rng) -> T) -> T {
        let mut rng = self.rng.get();
        let result = draw(&mut rng);
        self.rng.set(rng);
        result
    }

    /// The root context's tick: sends the queued shadows, gives up on overdue comparisons,
    /// reads the rollouts' aborts.
    pub fn tick(&self, proxy: &impl Proxy) {
        let now = proxy.now_ms();
        self.send_shadows(proxy, now);
        self.rollouts.tick(proxy, &self.config, now);
    }
}

/// None, or the rollouts' one second.
fn idle_tick_period(rollouts: &Rollouts) -> Duration {
    if rollouts.any {
        ROLLOUT_TICK
    } else {
        Duration::ZERO
    }
}
