//! The host side of shadow comparison: the primary's answer collected as it streams past (never
//! paused), the shadows' answers read when their HTTP calls end, and each result counted and
//! sampled into the log. The comparing itself is `crate::compare`.

use super::counters::Counter;
use crate::compare::pending::{Outcome, Pending, Ready, Side};
use crate::compare::{Answer, BodyMode, Compare, Part, Verdict};
use crate::metrics::{
    compare_counter, compare_diff_counter, compare_field_counter, MAX_COMPARE_FIELDS,
};
use crate::mirror::BodyCopy;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use std::cell::RefCell;
use std::collections::HashMap;

/// Envoy adds this to answers that came from an upstream; its own local replies (a refused
/// connection's 503, a timeout's 504) lack it: those are failures, not differences.
const UPSTREAM_TIME_HEADER: &str = "x-envoy-upstream-service-time";

/// At most one `differ` log line per mirror per this many milliseconds.
const LOG_EVERY_MS: u64 = 1000;

/// Comparisons of one worker: the pending ones, their counters (defined on first use), the
/// field labels seen per mirror, and when each mirror last logged.
pub struct Comparisons {
    pub pending: RefCell<Pending>,
    counters: RefCell<HashMap<(usize, usize, Series), Counter>>,
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
    fn count(&self, at: (usize, usize), key: Series, name: impl FnOnce() -> String) {
        let mut counters = self.counters.borrow_mut();
        counters
            .entry((at.0, at.1, key))
            .or_insert_with(|| Counter::define(&name()))
            .increment();
    }

    /// Counts a finished comparison and logs a sampled `differ`.
    pub fn report(&self, ready: &Ready, route: &str, mirror: &str, compare: &Compare, now_ms: u64) {
        let outcome = ready.outcome(compare);
        let at = (ready.route, ready.mirror);
        let result = outcome.as_str();
        self.count(at, Series::Result(result), || {
            compare_counter(route, mirror, result)
        });
        let Outcome::Judged(Verdict::Differ(found)) = &outcome else {
            return;
        };
        let mut parts: Vec<_> = found.iter().map(|d| d.place.part()).collect();
        parts.dedup();
        for part in Part::ALL {
            if parts.contains(&part) {
                self.count(at, Series::Part(part.as_str()), || {
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
            self.count(at, Series::Field(label.clone()), name);
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

/// The primary's answer, collected for the comparisons its request opened.
pub struct PrimaryAnswer {
    /// (route, mirror, comparison) opened when the copies were queued.
    pub opened: Vec<(usize, usize, u64)>,
    status: u16,
    grpc_status: Option<String>,
    /// Values of the headers any compared mirror lists.
    headers: Vec<(String, Option<String>)>,
    /// `None` when no compared mirror looks at bodies.
    body: Option<BodyCopy>,
    complete: bool,
}

impl PrimaryAnswer {
    /// For the compared mirrors among `compares`.
    pub fn new<'c>(compares: impl Iterator<Item = &'c Compare>) -> Self {
        let mut headers: Vec<(String, Option<String>)> = Vec::new();
        let mut body_limit: Option<usize> = None;
        for compare in compares {
            for name in &compare.headers {
                if !headers.iter().any(|(n, _)| n == name) {
                    headers.push((name.clone(), None));
                }
            }
            if compare.body != BodyMode::None {
                body_limit = Some(body_limit.unwrap_or(0).max(compare.max_body_bytes));
            }
        }
        PrimaryAnswer {
            opened: Vec::new(),
            status: 0,
            grpc_status: None,
            headers,
            body: body_limit.map(BodyCopy::new),
            complete: false,
        }
    }

    /// From the response headers (`end_of_stream`: a headers-only answer).
    pub fn headers(&mut self, end_of_stream: bool) {
        self.status = response_header(MapType::HttpResponseHeaders, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // A trailers-only gRPC answer carries its status in the headers.
        self.grpc_status = response_header(MapType::HttpResponseHeaders, "grpc-status");
        for (name, value) in &mut self.headers {
            *value = response_header(MapType::HttpResponseHeaders, name);
        }
        self.complete |= end_of_stream;
    }

    /// A body chunk of `size` bytes, copied as it passes.
    pub fn body_chunk(&mut self, size: usize, end_of_stream: bool) {
        // An empty chunk (the end of the stream alone) has nothing to read: no host call.
        if let Some(body) = self.body.as_mut().filter(|_| size > 0) {
            if body.wants(size) {
                if let Ok(Some(chunk)) =
                    hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpResponseBody, 0, size)
                {
                    body.push(&chunk);
                }
            } else {
                body.overflow();
            }
        }
        self.complete |= end_of_stream;
    }

    pub fn trailers(&mut self) {
        if let Some(status) = response_header(MapType::HttpResponseTrailers, "grpc-status") {
            self.grpc_status = Some(status);
        }
        self.complete = true;
    }

    /// The side to hand to mirror `compare`'s comparison when the stream ends.
    pub fn side(&self, compare: &Compare) -> Side {
        if !self.complete || self.status == 0 {
            return Side::Failed;
        }
        let body = match (&self.body, compare.body) {
            (_, BodyMode::None) | (None, _) => Vec::new(),
            (Some(copy), _) => match copy.bytes() {
                Some(bytes) if bytes.len() <= compare.max_body_bytes => bytes.to_vec(),
                _ => return Side::TooLarge,
            },
        };
        let headers = compare
            .headers
            .iter()
            .map(|name| {
                self.headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.clone())
            })
            .collect();
        Side::Answered(Answer {
            status: self.status,
            grpc_status: self.grpc_status.clone(),
            headers,
            body,
        })
    }
}

/// A shadow's answer, read in `on_http_call_response` (`num_headers` 0: no answer at all).
pub fn shadow_side(
    compare: &Compare,
    num_headers: usize,
    body_size: usize,
    num_trailers: usize,
) -> Side {
    if num_headers == 0 {
        return Side::Failed;
    }
    let header = |name: &str| response_header(MapType::HttpCallResponseHeaders, name);
    let status: u16 = header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
    if status == 0 || (status >= 500 && header(UPSTREAM_TIME_HEADER).is_none()) {
        return Side::Failed;
    }
    let body = match compare.body {
        BodyMode::None => Vec::new(),
        _ if body_size == 0 => Vec::new(),
        _ if body_size > compare.max_body_bytes => return Side::TooLarge,
        _ => hostcalls::get_buffer(
            proxy_wasm::types::BufferType::HttpCallResponseBody,
            0,
            body_size,
        )
        .ok()
        .flatten()
        .unwrap_or_default(),
    };
    let grpc_status = header("grpc-status").or_else(|| {
        (num_trailers > 0)
            .then(|| response_header(MapType::HttpCallResponseTrailers, "grpc-status"))
            .flatten()
    });
    Side::Answered(Answer {
        status,
        grpc_status,
        headers: compare.headers.iter().map(|name| header(name)).collect(),
        body,
    })
}

/// A header of `map` as text. Bytes, not the SDK's `String` reader, which panics on a value
/// that is not UTF-8; and only maps the host has at that moment (the SDK panics on the host's
/// "no such map" status, e.g. trailers of an answer that had none).
fn response_header(map: MapType, name: &str) -> Option<String> {
    let value = hostcalls::get_map_value_bytes(map, name).ok().flatten()?;
    Some(String::from_utf8_lossy(&value).into_owned())
}
