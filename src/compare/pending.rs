//! Comparisons waiting for their answers, per worker: the primary's (from the request's HTTP
//! context), the candidate's and the baseline's (from the root context's HTTP call responses),
//! in any order. An entry leaves as soon as it is complete, or at its deadline, so memory is
//! bounded by the cap and by time.

use super::{judge, Answer, Compare, Verdict};
use std::collections::HashMap;

/// Which copy an HTTP call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Candidate,
    Baseline,
}

/// One side's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Side {
    Answered(Answer),
    /// No answer: refused, reset, timed out (Envoy's own 503/504 replies included), or, for the
    /// primary, the client went away or the stream was reset.
    Failed,
    /// A body larger than `max_body_bytes`.
    TooLarge,
}

/// What a finished comparison is counted as (`result` label).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Judged(Verdict),
    ShadowFailed,
    BaselineFailed,
    TooLarge,
    PrimaryIncomplete,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Judged(Verdict::Same) => "same",
            Outcome::Judged(Verdict::Differ(_)) => "differ",
            Outcome::Judged(Verdict::Noise) => "noise",
            Outcome::ShadowFailed => "shadow_failed",
            Outcome::BaselineFailed => "baseline_failed",
            Outcome::TooLarge => "too_large",
            Outcome::PrimaryIncomplete => "primary_incomplete",
        }
    }
}

/// A comparison with every answer in (or given up on at its deadline).
#[derive(Debug)]
pub struct Ready {
    pub route: usize,
    pub mirror: usize,
    /// `METHOD /path` (without the query), for the log.
    pub request: String,
    primary: Option<Side>,
    candidate: Option<Side>,
    baseline: Option<Side>,
    expects_baseline: bool,
}

impl Ready {
    /// The verdict, or why there is none. A side still missing at the deadline failed.
    pub fn outcome(&self, compare: &Compare) -> Outcome {
        let failed = Side::Failed;
        let primary = self.primary.as_ref().unwrap_or(&failed);
        let candidate = self.candidate.as_ref().unwrap_or(&failed);
        let baseline = self
            .expects_baseline
            .then(|| self.baseline.as_ref().unwrap_or(&failed));
        if *primary == Side::Failed {
            return Outcome::PrimaryIncomplete;
        }
        if *candidate == Side::Failed {
            return Outcome::ShadowFailed;
        }
        if baseline == Some(&Side::Failed) {
            return Outcome::BaselineFailed;
        }
        match (primary, candidate, baseline) {
            (Side::Answered(p), Side::Answered(c), None) => {
                Outcome::Judged(judge(compare, p, c, None))
            }
            (Side::Answered(p), Side::Answered(c), Some(Side::Answered(b))) => {
                Outcome::Judged(judge(compare, p, c, Some(b)))
            }
            _ => Outcome::TooLarge,
        }
    }
}

#[derive(Debug)]
struct Entry {
    ready: Ready,
    deadline_ms: u64,
}

impl Entry {
    fn complete(&self) -> bool {
        let r = &self.ready;
        r.primary.is_some()
            && r.candidate.is_some()
            && (!r.expects_baseline || r.baseline.is_some())
    }
}

/// The comparisons of one worker.
#[derive(Debug)]
pub struct Pending {
    cap: usize,
    next_id: u64,
    entries: HashMap<u64, Entry>,
    /// HTTP call token → (comparison, which copy).
    calls: HashMap<u32, (u64, Role)>,
    /// Deadlines are looked at no more often than every [`EXPIRY_EVERY_MS`].
    next_expiry_ms: u64,
}

/// How often [`Pending::expire`] scans the table: the root's tick runs every millisecond, and a
/// deadline a tenth of a second late changes nothing.
const EXPIRY_EVERY_MS: u64 = 100;

impl Pending {
    pub fn new(cap: usize) -> Self {
        Pending {
            cap,
            next_id: 0,
            entries: HashMap::new(),
            calls: HashMap::new(),
            next_expiry_ms: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Opens a comparison for `route`'s `mirror`, given up at `deadline_ms`; `None` at the cap.
    pub fn open(
        &mut self,
        route: usize,
        mirror: usize,
        request: String,
        expects_baseline: bool,
        deadline_ms: u64,
    ) -> Option<u64> {
        if self.entries.len() >= self.cap {
            return None;
        }
        self.next_id += 1;
        let ready = Ready {
            route,
            mirror,
            request,
            primary: None,
            candidate: None,
            baseline: None,
            expects_baseline,
        };
        self.entries
            .insert(self.next_id, Entry { ready, deadline_ms });
        Some(self.next_id)
    }

    /// The HTTP call `token` carries `role`'s copy for comparison `id`.
    pub fn dispatched(&mut self, token: u32, id: u64, role: Role) {
        if self.entries.contains_key(&id) {
            self.calls.insert(token, (id, role));
        }
    }

    /// Whether `token` is one of ours (the adapter reads the answer only then).
    pub fn is_compared(&self, token: u32) -> bool {
        self.calls.contains_key(&token)
    }

    /// The route and mirror whose copy HTTP call `token` carries.
    pub fn mirror_of(&self, token: u32) -> Option<(usize, usize)> {
        let (id, _) = self.calls.get(&token)?;
        let ready = &self.entries.get(id)?.ready;
        Some((ready.route, ready.mirror))
    }

    /// The primary's side of `id`; the comparison if it is now complete.
    pub fn primary(&mut self, id: u64, side: Side) -> Option<Ready> {
        self.entries.get_mut(&id)?.ready.primary = Some(side);
        self.take_if_complete(id)
    }

    /// A copy's side, by the comparison and role (a dispatch that failed has no token).
    pub fn copy(&mut self, id: u64, role: Role, side: Side) -> Option<Ready> {
        let ready = &mut self.entries.get_mut(&id)?.ready;
        match role {
            Role::Candidate => ready.candidate = Some(side),
            Role::Baseline => ready.baseline = Some(side),
        }
        self.take_if_complete(id)
    }

    /// The answer to HTTP call `token`.
    pub fn answered(&mut self, token: u32, side: Side) -> Option<Ready> {
        let (id, role) = self.calls.remove(&token)?;
        self.copy(id, role, side)
    }

    /// Forgets comparison `id` without a result (its copy was never sent).
    pub fn abandon(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// Comparisons past their deadline at `now_ms`, with what arrived.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Ready> {
        if now_ms < self.next_expiry_ms || self.entries.is_empty() {
            return Vec::new();
        }
        self.next_expiry_ms = now_ms + EXPIRY_EVERY_MS;
        let late: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        if !late.is_empty() {
            self.calls.retain(|_, (id, _)| !late.contains(id));
        }
        late.into_iter()
            .filter_map(|id| self.entries.remove(&id))
            .map(|e| e.ready)
            .collect()
    }

    fn take_if_complete(&mut self, id: u64) -> Option<Ready> {
        // Complete means every copy's call has answered, and so has left `calls`.
        if !self.entries.get(&id)?.complete() {
            return None;
        }
        self.entries.remove(&id).map(|e| e.ready)
    }
}
