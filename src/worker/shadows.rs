//! Shadows leave through the outbox: queued by a request, sent on the root's tick, counted
//! against the in-flight cap until the proxy reports their end.

use super::state::Worker;
use crate::compare::answers::{shadow_side, ShadowAnswer};
use crate::compare::pending::{Role, Side};
use crate::metrics::MirrorOutcome;
use crate::mirror::Shadow;
use crate::proxy::{HttpCall, Proxy};
use std::time::Duration;

impl Worker {
    /// Queues a shadow for the root context to send; false if it was not queued (counted why).
    pub fn enqueue(&self, proxy: &impl Proxy, shadow: Shadow) -> bool {
        let (route, mirror) = (shadow.route, shadow.mirror);
        match self.outbox.enqueue(proxy, shadow) {
            Ok(()) => true,
            Err(outcome) => {
                self.count_mirror(proxy, route, mirror, outcome);
                false
            }
        }
    }

    /// Sends every queued shadow (on the root's tick, so the proxy reports each call's end to
    /// the root context, which outlives the requests), after forgetting shadows and
    /// comparisons past their deadline.
    pub fn send_shadows(&self, proxy: &impl Proxy, now: u64) {
        self.outbox.expire(now);
        let overdue = self.comparisons.pending.borrow_mut().expire(now);
        for late in overdue {
            self.report(proxy, &late, now);
        }
        // Pending comparisons keep the tick alive: their deadlines are checked here.
        let waiting = !self.comparisons.pending.borrow().is_empty();
        for shadow in self.outbox.take(proxy, waiting) {
            self.send(proxy, shadow, now);
        }
        self.counters
            .shadows_in_flight(proxy, self.outbox.take_gauge_delta());
    }

    fn send(&self, proxy: &impl Proxy, shadow: Shadow, now: u64) {
        let Some(mirror) = self
            .config
            .routes
            .get(shadow.route)
            .and_then(|route| route.mirrors.get(shadow.mirror))
        else {
            return;
        };
        let cluster = match (shadow.compared, &mirror.compare) {
            (Some((_, Role::Baseline)), Some(compare)) => {
                compare.baseline.as_deref().unwrap_or(&mirror.cluster)
            }
            _ => mirror.cluster.as_str(),
        };
        let call = HttpCall {
            cluster,
            headers: shadow
                .headers
                .pairs(&shadow.authority, &mirror.strip_headers),
            body: (!shadow.body.is_empty()).then_some(&shadow.body[..]),
            trailers: shadow
                .trailers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            timeout: Duration::from_millis(u64::from(mirror.timeout_ms)),
        };
        let outcome = match proxy.dispatch(call) {
            Ok(token) => {
                self.outbox
                    .started(token, now + u64::from(mirror.timeout_ms));
                if let Some((id, role)) = shadow.compared {
                    let mut pending = self.comparisons.pending.borrow_mut();
                    pending.dispatched(token, id, role);
                }
                MirrorOutcome::Mirrored
            }
            Err(refused) => {
                log::debug!("split-mirror: mirror to {cluster} failed: {refused}");
                if let Some((id, role)) = shadow.compared {
                    let done = self
                        .comparisons
                        .pending
                        .borrow_mut()
                        .copy(id, role, Side::Failed);
                    if let Some(ready) = done {
                        self.report(proxy, &ready, now);
                    }
                }
                MirrorOutcome::DispatchFailed
            }
        };
        // The baseline's copy is the comparison's, not one of the mirror's copies.
        if !matches!(shadow.compared, Some((_, Role::Baseline))) {
            self.count_mirror(proxy, shadow.route, shadow.mirror, outcome);
        }
    }

    /// The proxy reports the end of HTTP call `token` (answered, failed or timed out). Its
    /// in-flight slot is freed; it is read only when it is compared.
    pub fn shadow_answered(&self, proxy: &impl Proxy, token: u32, answer: &impl ShadowAnswer) {
        if self.outbox.finished(token) {
            self.counters
                .shadows_in_flight(proxy, self.outbox.take_gauge_delta());
        }
        let compared = self.comparisons.pending.borrow().mirror_of(token);
        let Some((route, mirror)) = compared else {
            return;
        };
        let Some(compare) = self
            .config
            .routes
            .get(route)
            .and_then(|r| r.mirrors.get(mirror))
            .and_then(|m| m.compare.as_ref())
        else {
            return;
        };
        let side = shadow_side(compare, answer);
        let done = self.comparisons.pending.borrow_mut().answered(token, side);
        if let Some(ready) = done {
            self.report(proxy, &ready, proxy.now_ms());
        }
    }
}
