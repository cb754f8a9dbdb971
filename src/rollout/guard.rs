//! The guard: its configuration, its per-worker state (the sequential tests of `cusum.rs` on
//! 5xx and slow answers), and the responses counted per second over a sliding window for the
//! abort's message.

use super::cusum::{Cusum, Test};

/// The guard of a route's rollout, as configured and compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// The highest acceptable 5xx share of the canary's answers (0..=1).
    pub max_error_rate: f64,
    /// The same in millionths, to write it in messages without float formatting.
    pub max_error_rate_millionths: u64,
    /// No abort before this worker has seen this many canary answers.
    pub min_requests: u64,
    /// How long the other backends may be silent before the canary is judged alone; also the
    /// period of the counts an abort reports.
    pub window_s: u32,
    /// The "bad" multiple of the limits the tests are built to detect.
    pub sensitivity: f64,
    /// The chance that a canary at half the limit is aborted over one day at 1,000 answers/s.
    pub false_abort_rate: f64,
    /// The sequential test on 5xx answers.
    pub errors: Test,
    pub latency: Option<LatencyGuard>,
}

/// The latency half of the guard: answers slower than `max_latency_ms` are "slow", and the
/// same test applies to their share.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyGuard {
    pub max_latency_ms: u32,
    pub max_slow_rate: f64,
    pub max_slow_rate_millionths: u64,
    pub test: Test,
}

/// What the guard needs to know of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer {
    pub server_error: bool,
    pub slow: bool,
}

/// Why a rollout was aborted (the `reason` label of `split_mirror_rollout_aborts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    ServerErrors,
    Latency,
}

impl AbortReason {
    pub const ALL: [AbortReason; 2] = [AbortReason::ServerErrors, AbortReason::Latency];

    pub fn index(self) -> usize {
        match self {
            AbortReason::ServerErrors => 0,
            AbortReason::Latency => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::ServerErrors => "5xx",
            AbortReason::Latency => "latency",
        }
    }
}

/// An abort, with the evidence it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    pub reason: AbortReason,
    /// The test's state at the abort: the canary's and the others' answers over its span.
    pub evidence: Cusum,
}

/// One worker's state of a guard (see `cusum.rs` for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardState {
    pub errors: Cusum,
    pub slow: Cusum,
    /// Canary answers this worker has seen (for `min_requests`).
    pub canary_answers: u64,
    /// When the other backends last answered (ms).
    pub last_other_ms: i64,
    /// Canary answers since the other backends last answered.
    pub canary_since_others: u64,
}

/// The other backends count as gone (the canary is judged alone) only after this many canary
/// answers without one of theirs, besides `window_s`: at 90 % canary traffic, 128 answers in a
/// row are the canary's with probability 0.9^128 ≈ 1.4e-6.
pub const SILENT_ANSWERS: u64 = 128;

impl Default for GuardState {
    fn default() -> Self {
        GuardState {
            errors: Cusum::default(),
            slow: Cusum::default(),
            canary_answers: 0,
            last_other_ms: i64::MIN,
            canary_since_others: 0,
        }
    }
}

impl GuardState {
    /// One canary answer at `now_ms`; `Some` when it aborts the rollout. `others_routed`: the
    /// weights in force send the other backends some traffic (false at the last step).
    pub fn canary(
        &mut self,
        guard: &Guard,
        now_ms: i64,
        answer: Answer,
        others_routed: bool,
    ) -> Option<Abort> {
        self.canary_answers += 1;
        self.canary_since_others += 1;
        self.errors.canary(&guard.errors, answer.server_error);
        if let Some(latency) = &guard.latency {
            self.slow.canary(&latency.test, answer.slow);
        }
        if self.canary_answers < guard.min_requests {
            return None;
        }
        let window_ms = i64::from(guard.window_s) * 1000;
        let alone = !others_routed
            || (self.canary_since_others >= SILENT_ANSWERS
                && now_ms.saturating_sub(self.last_other_ms) >= window_ms);
        let judge = |cusum: &Cusum, test: &Test, reason: AbortReason| {
            (cusum.alarmed(test) && cusum.worse_than_others(test, alone)).then_some(Abort {
                reason,
                evidence: *cusum,
            })
        };
        judge(&self.errors, &guard.errors, AbortReason::ServerErrors).or_else(|| {
            let latency = guard.latency.as_ref()?;
            judge(&self.slow, &latency.test, AbortReason::Latency)
        })
    }

    /// `answers` answers of the other backends at `now_ms`, `server_errors` of them 5xx and
    /// `slow` of them slow (one at a time in the filter; in bulk in the simulation).
    pub fn others(
        &mut self,
        guard: &Guard,
        now_ms: i64,
        answers: u64,
        server_errors: u64,
        slow: u64,
    ) {
        if answers == 0 {
            return;
        }
        self.last_other_ms = self.last_other_ms.max(now_ms);
        self.canary_since_others = 0;
        self.errors.others(answers, server_errors);
        if guard.latency.is_some() {
            self.slow.others(answers, slow);
        }
    }
}

/// Responses, 5xx responses and slow responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub responses: u64,
    pub server_errors: u64,
    pub slow: u64,
}

impl Counts {
    /// The 5xx share (0 without responses).
    pub fn error_rate(self) -> f64 {
        if self.responses == 0 {
            0.0
        } else {
            self.server_errors as f64 / self.responses as f64
        }
    }

    fn add(&mut self, other: Counts) {
        self.responses += other.responses;
        self.server_errors += other.server_errors;
        self.slow += other.slow;
    }
}

/// The `:status` pseudo-header's number.
pub fn status_of_header(value: &[u8]) -> Option<u16> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The class of an HTTP status, as `split_mirror_responses_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl StatusClass {
    pub const ALL: [StatusClass; 4] = [
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
    ];

    /// `None` for informational and out-of-range statuses (not counted).
    pub fn of(status: u16) -> Option<StatusClass> {
        match status {
            200..=299 => Some(StatusClass::Success),
            300..=399 => Some(StatusClass::Redirection),
            400..=499 => Some(StatusClass::ClientError),
            500..=599 => Some(StatusClass::ServerError),
            _ => None,
        }
    }

    /// Parses the `:status` pseudo-header's bytes.
    pub fn of_header(value: &[u8]) -> Option<StatusClass> {
        status_of_header(value).and_then(StatusClass::of)
    }

    pub fn index(self) -> usize {
        match self {
            StatusClass::Success => 0,
            StatusClass::Redirection => 1,
            StatusClass::ClientError => 2,
            StatusClass::ServerError => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

/// At most this many buckets per window: a 30 s window counts per second, a one-hour window
/// per minute (rounded up to whole buckets), so memory stays small whatever `window_s` is.
const MAX_BUCKETS: u32 = 60;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// `time / bucket_ms` of the period this bucket counts; stale buckets are reset on use.
    period: i64,
    canary: Counts,
    others: Counts,
}

/// Counts of one worker over the last `window_s` seconds, in a ring of buckets.
#[derive(Debug, Clone)]
pub struct Window {
    bucket_ms: i64,
    buckets: Vec<Bucket>,
}

impl Window {
    pub fn new(window_s: u32) -> Window {
        let window_s = window_s.max(1);
        let bucket_s = window_s.div_ceil(MAX_BUCKETS);
        let count = window_s.div_ceil(bucket_s);
        Window {
            bucket_ms: i64::from(bucket_s) * 1000,
            buckets: vec![
                Bucket {
                    period: i64::MIN,
                    ..Bucket::default()
                };
                count as usize
            ],
        }
    }

    fn period(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.bucket_ms)
    }

    /// Counts one response, of the canary or of another backend.
    pub fn record_answer(&mut self, now_ms: i64, canary: bool, answer: Answer) {
        let period = self.period(now_ms);
        let len = self.buckets.len() as i64;
        let Some(bucket) = self.buckets.get_mut(period.rem_euclid(len) as usize) else {
            return;
        };
        if bucket.period > period {
            // Older than the window (its slot already counts a later period): not counted.
            return;
        }
        if bucket.period != period {
            *bucket = Bucket {
                period,
                ..Bucket::default()
            };
        }
        let counts = if canary {
            &mut bucket.canary
        } else {
            &mut bucket.others
        };
        counts.responses += 1;
        counts.server_errors += u64::from(answer.server_error);
        counts.slow += u64::from(answer.slow);
    }

    /// `(canary, others)` over the window ending at `now_ms`.
    pub fn totals(&self, now_ms: i64) -> (Counts, Counts) {
        let period = self.period(now_ms);
        let oldest = period - self.buckets.len() as i64;
        let mut canary = Counts::default();
        let mut others = Counts::default();
        for bucket in self
            .buckets
            .iter()
            .filter(|b| b.period > oldest && b.period <= period)
        {
            canary.add(bucket.canary);
            others.add(bucket.others);
        }
        (canary, others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERROR: Answer = Answer {
        server_error: true,
        slow: false,
    };
    const OK: Answer = Answer {
        server_error: false,
        slow: false,
    };
    const SLOW: Answer = Answer {
        server_error: false,
        slow: true,
    };

    fn guard(min_requests: u64, latency: bool) -> Guard {
        Guard {
            max_error_rate: 0.05,
            max_error_rate_millionths: 50_000,
            min_requests,
            window_s: 30,
            sensitivity: 2.0,
            false_abort_rate: 0.01,
            errors: Test::new(0.05, 2.0, 0.01),
            latency: latency.then(|| LatencyGuard {
                max_latency_ms: 100,
                max_slow_rate: 0.01,
                max_slow_rate_millionths: 10_000,
                test: Test::new(0.01, 2.0, 0.01),
            }),
        }
    }

    fn counts(responses: u64, server_errors: u64) -> Counts {
        Counts {
            responses,
            server_errors,
            slow: 0,
        }
    }

    /// Feeds `answers` canary answers (one `other` answer after each when `with_others`) and
    /// returns the canary answer that aborted, if any.
    fn first_abort(
        guard: &Guard,
        answers: impl IntoIterator<Item = Answer>,
        other: Option<Answer>,
    ) -> Option<(u64, Abort)> {
        let mut state = GuardState::default();
        for (i, answer) in answers.into_iter().enumerate() {
            let now = i as i64 * 10;
            if let Some(abort) = state.canary(guard, now, answer, other.is_some()) {
                return Some((i as u64 + 1, abort));
            }
            if let Some(other) = other {
                state.others(
                    guard,
                    now + 5,
                    1,
                    u64::from(other.server_error),
                    u64::from(other.slow),
                );
            }
        }
        None
    }

    #[test]
    fn hard_down_canary_aborts_at_min_requests_or_the_threshold() {
        let quick = guard(1, false);
        let needed = quick.errors.failures_to_threshold();
        assert!(needed <= 25, "{needed} failures to the threshold");
        let (at, abort) = first_abort(&quick, [ERROR; 100], Some(OK)).unwrap();
        assert_eq!(at, needed);
        assert_eq!(abort.reason, AbortReason::ServerErrors);
        assert_eq!(abort.evidence.canary.bad, needed);
        // min_requests holds the abort back, never forward.
        let (at, _) = first_abort(&guard(20, false), [ERROR; 100], Some(OK)).unwrap();
        assert_eq!(at, needed.max(20));
    }

    #[test]
    fn last_step_canary_is_judged_alone() {
        let (at, _) = first_abort(&guard(1, false), [ERROR; 100], None).unwrap();
        assert_eq!(at, guard(1, false).errors.failures_to_threshold());
    }

    #[test]
    fn others_failing_alike_block_the_abort() {
        // Both hard down: the others' 100 % 5xx is the canary's reference.
        assert_eq!(
            first_abort(&guard(1, false), [ERROR; 10_000], Some(ERROR)),
            None
        );
    }

    #[test]
    fn silent_others_are_gone_after_the_window_and_128_canary_answers() {
        let guard = guard(1, false);
        let mut state = GuardState::default();
        state.others(&guard, 0, 1, 0, 0);
        // Within the window: no comparison possible, no abort however bad the canary.
        for i in 0..200 {
            assert_eq!(state.canary(&guard, 1 + i, ERROR, true), None);
        }
        // Past it, and past 128 canary answers since the others' last: judged alone.
        assert!(state.canary(&guard, 31_000, ERROR, true).is_some());
        let mut state = GuardState::default();
        state.others(&guard, 0, 1, 0, 0);
        for _ in 0..SILENT_ANSWERS - 1 {
            assert_eq!(state.canary(&guard, 40_000, ERROR, true), None);
        }
        assert!(state.canary(&guard, 40_000, ERROR, true).is_some());
    }

    #[test]
    fn slow_canary_aborts_for_latency() {
        let (at, abort) = first_abort(&guard(1, true), [SLOW; 100], Some(OK)).unwrap();
        assert_eq!(abort.reason, AbortReason::Latency);
        assert!(at <= 25, "{at}");
        assert_eq!(first_abort(&guard(1, false), [SLOW; 100], Some(OK)), None);
    }

    #[test]
    fn window_forgets_old_responses() {
        let mut window = Window::new(30);
        for second in 0..10 {
            window.record_answer(second * 1000, true, ERROR);
            window.record_answer(second * 1000 + 500, false, OK);
        }
        assert_eq!(window.totals(9_999), (counts(10, 10), counts(10, 0)));
        // At 35 s the window is (5 s, 35 s]: seconds 6..=9 remain.
        assert_eq!(window.totals(35_000).0, counts(4, 4));
        assert_eq!(window.totals(60_000), (counts(0, 0), counts(0, 0)));
        // A reused slot starts from zero.
        window.record_answer(40_000, true, OK);
        assert_eq!(window.totals(40_000).0, counts(1, 0));
    }

    #[test]
    fn a_late_response_older_than_the_window_erases_nothing() {
        let mut window = Window::new(30);
        window.record_answer(31_000, true, ERROR);
        window.record_answer(1_000, true, OK);
        assert_eq!(window.totals(31_000).0, counts(1, 1));
    }

    #[test]
    fn long_windows_use_coarser_buckets() {
        let window = Window::new(3600);
        assert_eq!(window.buckets.len(), 60);
        assert_eq!(window.bucket_ms, 60_000);
        let short = Window::new(7);
        assert_eq!((short.buckets.len(), short.bucket_ms), (7, 1000));
    }

    #[test]
    fn status_classes() {
        assert_eq!(
            StatusClass::of_header(b"503"),
            Some(StatusClass::ServerError)
        );
        assert_eq!(StatusClass::of_header(b"200"), Some(StatusClass::Success));
        assert_eq!(
            StatusClass::of_header(b"404"),
            Some(StatusClass::ClientError)
        );
        assert_eq!(
            StatusClass::of_header(b"301"),
            Some(StatusClass::Redirection)
        );
        assert_eq!(StatusClass::of_header(b"101"), None);
        assert_eq!(StatusClass::of_header(b"abc"), None);
        for (i, class) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
    }
}
