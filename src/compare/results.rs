//! One worker's comparisons: the table of pending ones, and each finished one counted (series
//! defined on first use) and sampled into the log.

use super::pending::{Outcome, Pending, Ready};
use super::{Compare, Part, Verdict};
use crate::metrics::{
    compare_counter, compare_diff_counter, compare_field_counter, MAX_COMPARE_FIELDS,
};
use crate::proxy::metric::LazyMetric;
use crate::proxy::{MetricKind, Proxy};
use std::cell::RefCell;
use std::collections::HashMap;

/// At most one `differ` log line per mirror per this many milliseconds.
const LOG_EVERY_MS: u64 = 1000;

/// Comparisons of one worker: the pending ones, their counters, the field labels seen per
/// mirror, and when each mirror last logged.
pub struct Comparisons {
    pub pending: RefCell<Pending>,
    counters: RefCell<HashMap<(usize, usize, Series), LazyMetric>>,
    fields: RefCell<HashMap<(usize, usize), Vec<String>>>,
    logged_ms: RefCell<HashMap<(usize, usize), u64>>,
}

impl Comparisons {
    pub fn new(cap: usize) -> Self {
        Comparisons {
            pending: RefCell::new(Pending::new(cap)),
            counters: RefCell::new(HashMap::new()),
            fields: RefCell::new(HashMap::new()),
            logged_ms: RefCell::new(HashMap::new()),
        }
    }

    /// Increments the series `key` of `(route, mirror)`; its name is built, and the metric
    /// defined, only the first time.
    fn count(
        &self,
        proxy: &impl Proxy,
        at: (usize, usize),
        key: Series,
        name: impl FnOnce() -> String,
    ) {
        let mut counters = self.counters.borrow_mut();
        let counter = counters.entry((at.0, at.1, key)).or_default();
        counter.add(proxy, MetricKind::Counter, 1, name);
    }

    /// Counts a finished comparison and logs a sampled `differ`.
    pub fn report(
        &self,
        proxy: &impl Proxy,
        ready: &Ready,
        (route, mirror): (&str, &str),
        compare: &Compare,
        now_ms: u64,
    ) {
        let outcome = ready.outcome(compare);
        let at = (ready.route, ready.mirror);
        let result = outcome.as_str();
        self.count(proxy, at, Series::Result(result), || {
            compare_counter(route, mirror, result)
        });
        let Outcome::Judged(Verdict::Differ(found)) = &outcome else {
            return;
        };
        let mut parts: Vec<_> = found.iter().map(|d| d.place.part()).collect();
        parts.dedup();
        for part in Part::ALL {
            if parts.contains(&part) {
                self.count(proxy, at, Series::Part(part.as_str()), || {
                    compare_diff_counter(route, mirror, part)
                });
            }
        }
        // Each field once per request, however many array elements differ under it.
        let mut fields: Vec<&str> = found.iter().filter_map(|d| d.field.as_deref()).collect();
        fields.sort_unstable();
        fields.dedup();
        for field in fields {
            let label = self.field_label(at, field);
            let name = || compare_field_counter(route, mirror, &label);
            self.count(proxy, at, Series::Field(label.clone()), name);
        }
        let mut logged = self.logged_ms.borrow_mut();
        let last = logged.get(&at).copied();
        if last.map_or(true, |last| now_ms >= last + LOG_EVERY_MS) {
            logged.insert(at, now_ms);
            let shown: Vec<String> = found
                .iter()
                .take(3)
                .map(|d| format!("{}: {:?} vs {:?}", d.place, d.primary, d.other))
                .collect();
            log::info!(
                "split-mirror: compare route={route} mirror={mirror} differ: {} ({} differences): {}",
                ready.request,
                found.len(),
                shown.join("; ")
            );
        }
    }

    /// The field's own label, or `other` once the mirror has [`MAX_COMPARE_FIELDS`] of them.
    fn field_label(&self, key: (usize, usize), field: &str) -> String {
        let mut fields = self.fields.borrow_mut();
        let seen = fields.entry(key).or_default();
        if seen.iter().any(|f| f == field) {
            return field.to_string();
        }
        if seen.len() < MAX_COMPARE_FIELDS {
            seen.push(field.to_string());
            return field.to_string();
        }
        "other".to_string()
    }
}

/// One series of a mirror's comparison counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Series {
    Result(&'static str),
    Part(&'static str),
    Field(String),
}
