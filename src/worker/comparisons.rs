//! A comparison's life: opened when its copies are queued (the candidate's and, with a
//! baseline, the baseline's), fed the primary's answer when the request's stream ends and the
//! copies' answers when their calls end, in any order, and reported when complete or overdue.

use super::copy::MirrorCopy;
use super::state::Worker;
use crate::compare::answers::PrimaryAnswer;
use crate::compare::pending::{Ready, Role, Side};
use crate::compare::Compare;
use crate::metrics::MirrorOutcome;
use crate::mirror::{Shadow, Skip};
use crate::proxy::Proxy;

/// How long a comparison waits for the primary's end after the shadow's timeout.
const PRIMARY_GRACE_MS: u64 = 30_000;

impl Worker {
    /// Opens the comparison of `shadow`'s mirror and queues the candidate's copy, and the
    /// baseline's if there is one; only then does `primary` collect what the comparison needs
    /// (a full table or a refused copy buffers nothing). At the cap the copy is skipped like
    /// any other.
    pub fn send_compared(
        &self,
        proxy: &impl Proxy,
        shadow: Shadow,
        (timeout_ms, compare): (u32, &Compare),
        primary: &mut Option<PrimaryAnswer>,
    ) {
        let (now, route_index, mirror_index) = (proxy.now_ms(), shadow.route, shadow.mirror);
        // The primary may stream for a while after the shadow answered: wait for it too.
        let deadline = now + u64::from(timeout_ms) + PRIMARY_GRACE_MS;
        // From the headers already copied: a body or trailers callback cannot read them again.
        let request = shadow.headers.request_line();
        let opened = self.comparisons.pending.borrow_mut().open(
            shadow.route,
            shadow.mirror,
            request,
            compare.baseline.is_some(),
            deadline,
        );
        let Some(id) = opened else {
            let skip = MirrorOutcome::Skipped(Skip::InFlightCap);
            self.count_mirror(proxy, shadow.route, shadow.mirror, skip);
            return;
        };
        let baseline = compare.baseline.is_some().then(|| Shadow {
            compared: Some((id, Role::Baseline)),
            ..shadow.clone()
        });
        let candidate = Shadow {
            compared: Some((id, Role::Candidate)),
            ..shadow
        };
        if !self.enqueue(proxy, candidate) {
            self.comparisons.pending.borrow_mut().abandon(id);
            return;
        }
        if let Some(baseline) = baseline {
            if !self.enqueue(proxy, baseline) {
                let mut pending = self.comparisons.pending.borrow_mut();
                let done = pending.copy(id, Role::Baseline, Side::Failed);
                drop(pending);
                if let Some(ready) = done {
                    self.report(proxy, &ready, now);
                }
            }
        }
        let primary = primary.get_or_insert_with(PrimaryAnswer::default);
        primary.include(compare);
        primary.opened.push((route_index, mirror_index, id));
    }

    /// The primary's answer for a response that began before the request's copy was complete
    /// (the comparisons open only then): collected for every compared mirror that admitted
    /// the request.
    pub fn early_answer(&self, copy: &MirrorCopy) -> PrimaryAnswer {
        let mut primary = PrimaryAnswer::default();
        let route = self.config.routes.get(copy.route);
        for &i in &copy.mirrors {
            if let Some(compare) = route.and_then(|r| r.mirrors.get(i)?.compare.as_ref()) {
                primary.include(compare);
            }
        }
        primary
    }

    /// The request's stream is over: the primary's side of each comparison it opened,
    /// complete or not, goes to the comparison.
    pub fn primary_done(&self, proxy: &impl Proxy, primary: &PrimaryAnswer) {
        let now = proxy.now_ms();
        for &(route, mirror, id) in &primary.opened {
            let compare = self
                .config
                .routes
                .get(route)
                .and_then(|r| r.mirrors.get(mirror))
                .and_then(|m| m.compare.as_ref());
            let Some(compare) = compare else {
                continue;
            };
            let side = primary.side(compare);
            let done = self.comparisons.pending.borrow_mut().primary(id, side);
            if let Some(ready) = done {
                self.report(proxy, &ready, now);
            }
        }
    }

    /// Counts (and maybe logs) a comparison that has every answer, or has given up waiting.
    pub fn report(&self, proxy: &impl Proxy, ready: &Ready, now_ms: u64) {
        let Some(route) = self.config.routes.get(ready.route) else {
            return;
        };
        let Some(mirror) = route.mirrors.get(ready.mirror) else {
            return;
        };
        if let Some(compare) = &mirror.compare {
            let names = (route.name.as_str(), mirror.cluster.as_str());
            self.comparisons
                .report(proxy, ready, names, compare, now_ms);
        }
    }
}
