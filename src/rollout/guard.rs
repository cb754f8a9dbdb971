//! The guard: responses counted per second over a sliding window, and the rule that aborts a
//! rollout when the canary fails more than allowed and more than the other backends.

/// The guard of a route's rollout, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// The canary's 5xx share must exceed this (0..=1) to abort.
    pub max_error_rate: f64,
    /// The same in millionths, to write it in messages without float formatting.
    pub max_error_rate_millionths: u64,
    /// The canary needs at least this many responses in the window before it can be judged.
    pub min_requests: u64,
    /// Length of the sliding window in seconds.
    pub window_s: u32,
}

/// Responses and 5xx responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub responses: u64,
    pub server_errors: u64,
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
    }
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
        std::str::from_utf8(value)
            .ok()?
            .trim()
            .parse()
            .ok()
            .and_then(StatusClass::of)
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
    pub fn record(&mut self, now_ms: i64, canary: bool, class: StatusClass) {
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
        if class == StatusClass::ServerError {
            counts.server_errors += 1;
        }
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

/// How many standard errors of the difference the canary's 5xx share must exceed the others'
/// by: two backends failing alike differ by sampling noise alone, and the rule is checked at
/// every canary response, so a plain `>` would abort such a pair about half the time.
const NOISE_MARGIN_STANDARD_ERRORS: f64 = 3.0;

impl Guard {
    /// The abort rule: enough canary responses, a canary 5xx share above `max_error_rate`, and
    /// above the other backends' share in the same window by more than sampling noise (a
    /// shared outage is not the canary's fault).
    pub fn should_abort(&self, canary: Counts, others: Counts) -> bool {
        canary.responses >= self.min_requests
            && canary.error_rate() > self.max_error_rate
            && canary.error_rate() > others.error_rate() + noise_margin(canary, others)
    }
}

/// `3 ×` the standard error of the difference of the two shares under the hypothesis that
/// both backends fail alike (pooled share); 0 when the others had no responses.
fn noise_margin(canary: Counts, others: Counts) -> f64 {
    if others.responses == 0 || canary.responses == 0 {
        return 0.0;
    }
    let (n_canary, n_others) = (canary.responses as f64, others.responses as f64);
    let pooled = (canary.server_errors + others.server_errors) as f64 / (n_canary + n_others);
    let variance = pooled * (1.0 - pooled) * (1.0 / n_canary + 1.0 / n_others);
    NOISE_MARGIN_STANDARD_ERRORS * variance.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard {
            max_error_rate: 0.05,
            max_error_rate_millionths: 50_000,
            min_requests: 20,
            window_s: 30,
        }
    }

    fn counts(responses: u64, server_errors: u64) -> Counts {
        Counts {
            responses,
            server_errors,
        }
    }

    #[test]
    fn failing_canary_aborts_once_it_has_enough_responses() {
        assert!(!guard().should_abort(counts(19, 19), counts(100, 0)));
        assert!(guard().should_abort(counts(20, 20), counts(100, 0)));
        assert!(guard().should_abort(counts(20, 2), counts(0, 0)));
    }

    #[test]
    fn error_rate_at_the_limit_does_not_abort() {
        assert!(!guard().should_abort(counts(100, 5), counts(0, 0)));
        assert!(guard().should_abort(counts(100, 6), counts(0, 0)));
    }

    #[test]
    fn shared_failure_does_not_abort() {
        assert!(!guard().should_abort(counts(100, 20), counts(400, 80)));
        assert!(!guard().should_abort(counts(100, 20), counts(400, 90)));
        // Sampling noise: 24 % against 20 % over 100 responses is not evidence.
        assert!(!guard().should_abort(counts(100, 24), counts(400, 80)));
        assert!(guard().should_abort(counts(100, 40), counts(400, 80)));
    }

    #[test]
    fn canary_failing_ten_percent_beside_a_clean_stable_aborts() {
        assert!(guard().should_abort(counts(100, 10), counts(1000, 0)));
        assert!(guard().should_abort(counts(20, 20), counts(20, 0)));
    }

    #[test]
    fn failing_stable_does_not_abort_a_healthy_canary() {
        assert!(!guard().should_abort(counts(100, 0), counts(900, 90)));
    }

    #[test]
    fn window_forgets_old_responses() {
        let mut window = Window::new(30);
        for second in 0..10 {
            window.record(second * 1000, true, StatusClass::ServerError);
            window.record(second * 1000 + 500, false, StatusClass::Success);
        }
        assert_eq!(window.totals(9_999), (counts(10, 10), counts(10, 0)));
        // At 35 s the window is (5 s, 35 s]: seconds 6..=9 remain.
        assert_eq!(window.totals(35_000).0, counts(4, 4));
        assert_eq!(window.totals(60_000), (counts(0, 0), counts(0, 0)));
        // A reused slot starts from zero.
        window.record(40_000, true, StatusClass::Success);
        assert_eq!(window.totals(40_000).0, counts(1, 0));
    }

    #[test]
    fn a_late_response_older_than_the_window_erases_nothing() {
        let mut window = Window::new(30);
        window.record(31_000, true, StatusClass::ServerError);
        window.record(1_000, true, StatusClass::Success);
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
