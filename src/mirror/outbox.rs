//! One worker's shadows on their way out: queued by the requests, sent on the root context's
//! tick (so the host reports every call's end to a context that outlives the request, and the
//! in-flight cap counts exactly), and counted against the cap until they finish or time out.
//! The tick runs while there is work and stops after a second without any, so an idle worker
//! is not woken every millisecond and a busy one does not re-arm a timer per batch.

use super::{InFlight, Shadow, Skip};
use crate::metrics::MirrorOutcome;
use crate::proxy::Proxy;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// How soon the root context sends queued shadows.
pub const OUTBOX_TICK: Duration = Duration::from_millis(1);

/// Ticks without work before the fast tick stops (one second).
pub const IDLE_TICKS_BEFORE_STOP: u32 = 1000;

/// Shadows queued and in flight on one worker.
pub struct Outbox {
    in_flight: RefCell<InFlight>,
    queue: RefCell<Vec<Shadow>>,
    tick_running: Cell<bool>,
    idle_ticks: Cell<u32>,
    /// Change of the in-flight gauge not yet published.
    in_flight_delta: Cell<i64>,
    /// The tick without shadows: none, or the rollouts' slower one.
    idle_period: Duration,
}

impl Outbox {
    pub fn new(cap: usize, idle_period: Duration) -> Outbox {
        Outbox {
            in_flight: RefCell::new(InFlight::new(cap)),
            queue: RefCell::new(Vec::new()),
            tick_running: Cell::new(false),
            idle_ticks: Cell::new(0),
            in_flight_delta: Cell::new(0),
            idle_period,
        }
    }

    /// Queues `shadow` and arms the fast tick if it is not running; the outcome to count if it
    /// was not queued (the in-flight cap counting the queue is reached, or the tick refused).
    pub fn enqueue(&self, proxy: &impl Proxy, shadow: Shadow) -> Result<(), MirrorOutcome> {
        let mut queue = self.queue.borrow_mut();
        if !self.in_flight.borrow().has_room(queue.len()) {
            return Err(MirrorOutcome::Skipped(Skip::InFlightCap));
        }
        if !self.tick_running.get() {
            if let Err(refused) = proxy.set_tick(OUTBOX_TICK) {
                log::warn!("split-mirror: cannot schedule mirroring ({refused})");
                return Err(MirrorOutcome::DispatchFailed);
            }
            self.tick_running.set(true);
        }
        queue.push(shadow);
        Ok(())
    }

    /// Forgets the shadows whose timeout has passed at `now_ms` (the host gave up on them).
    pub fn expire(&self, now_ms: u64) {
        let expired = self.in_flight.borrow_mut().expire(now_ms);
        self.in_flight_delta
            .set(self.in_flight_delta.get() - expired as i64);
    }

    /// Takes every queued shadow (on the tick). Without shadows and without `other_work`
    /// (pending comparisons, whose deadlines the tick checks), a second of idle ticks puts the
    /// timer back to the idle period.
    pub fn take(&self, proxy: &impl Proxy, other_work: bool) -> Vec<Shadow> {
        let shadows = std::mem::take(&mut *self.queue.borrow_mut());
        if shadows.is_empty() && !other_work {
            self.idle_ticks.set(self.idle_ticks.get() + 1);
            if self.idle_ticks.get() >= IDLE_TICKS_BEFORE_STOP {
                let _ = proxy.set_tick(self.idle_period);
                self.tick_running.set(false);
                self.idle_ticks.set(0);
            }
        } else {
            self.idle_ticks.set(0);
        }
        shadows
    }

    /// A shadow was dispatched with `token`; it counts until `deadline_ms`.
    pub fn started(&self, token: u32, deadline_ms: u64) {
        self.in_flight.borrow_mut().started(token, deadline_ms);
        self.in_flight_delta.set(self.in_flight_delta.get() + 1);
    }

    /// The host reported `token` done. True when the gauge should be published now (no tick
    /// runs to publish it).
    pub fn finished(&self, token: u32) -> bool {
        if !self.in_flight.borrow_mut().finished(token) {
            return false;
        }
        self.in_flight_delta.set(self.in_flight_delta.get() - 1);
        !self.tick_running.get()
    }

    /// The in-flight gauge's change since the last call (published once per tick, not twice
    /// per shadow).
    pub fn take_gauge_delta(&self) -> i64 {
        self.in_flight_delta.replace(0)
    }

    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }
}
