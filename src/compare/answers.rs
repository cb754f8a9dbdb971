//! The answers a comparison compares, collected from what the proxy hands over: the primary's
//! as it streams past (never paused), and a shadow's when its HTTP call ends. The proxy's
//! readers come in as closures and a small trait, so this is plain logic.

use super::pending::Side;
use super::{Answer, BodyMode, Compare};
use crate::mirror::BodyCopy;

/// Envoy adds this to answers that came from an upstream; its own local replies (a refused
/// connection's 503, a timeout's 504) lack it: those are failures, not differences.
pub const UPSTREAM_TIME_HEADER: &str = "x-envoy-upstream-service-time";

/// The primary's answer, collected for the comparisons its request opened.
#[derive(Debug, Default)]
pub struct PrimaryAnswer {
    /// (route, mirror, comparison) opened when the copies were queued.
    pub opened: Vec<(usize, usize, u64)>,
    status: u16,
    grpc_status: Option<String>,
    /// Values of the headers any of the comparisons lists.
    headers: Vec<(String, Option<String>)>,
    /// `None` when no comparison looks at bodies.
    body: Option<BodyCopy>,
    complete: bool,
}

impl PrimaryAnswer {
    /// Collects, from now on, what `compare` looks at too (its headers, its body up to its
    /// limit).
    pub fn include(&mut self, compare: &Compare) {
        for name in &compare.headers {
            if !self.headers.iter().any(|(n, _)| n == name) {
                self.headers.push((name.clone(), None));
            }
        }
        if compare.body != BodyMode::None {
            let limit = self.body.as_ref().map_or(0, BodyCopy::limit);
            if self.body.is_none() || compare.max_body_bytes > limit {
                self.body = Some(BodyCopy::new(limit.max(compare.max_body_bytes)));
            }
        }
    }

    /// Whether the body's bytes are being kept (tests: nothing buffered without a comparison).
    pub fn buffers_body(&self) -> bool {
        self.body.is_some()
    }

    /// From the response headers, read by `header` (`end_of_stream`: a headers-only answer).
    pub fn headers(&mut self, mut header: impl FnMut(&str) -> Option<String>, end_of_stream: bool) {
        self.status = header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        // A trailers-only gRPC answer carries its status in the headers.
        self.grpc_status = header("grpc-status");
        for (name, value) in &mut self.headers {
            *value = header(name);
        }
        self.complete |= end_of_stream;
    }

    /// A body chunk of `size` bytes, read by `read` only when it is kept.
    pub fn body_chunk(
        &mut self,
        size: usize,
        end_of_stream: bool,
        read: impl FnOnce(usize) -> Option<Vec<u8>>,
    ) {
        // An empty chunk (the end of the stream alone) has nothing to read: no host call.
        if let Some(body) = self.body.as_mut().filter(|_| size > 0) {
            if body.wants(size) {
                if let Some(chunk) = read(size) {
                    body.push(&chunk);
                }
            } else {
                body.overflow();
            }
        }
        self.complete |= end_of_stream;
    }

    /// The trailers ended the answer; `grpc_status` from them, if any.
    pub fn trailers(&mut self, grpc_status: Option<String>) {
        if let Some(status) = grpc_status {
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

/// How the proxy hands over a shadow's answer when its HTTP call ends.
pub trait ShadowAnswer {
    /// How many headers, body bytes and trailers it has (no headers: no answer at all).
    fn sizes(&self) -> (usize, usize, usize);
    fn header(&self, name: &str) -> Option<String>;
    fn trailer(&self, name: &str) -> Option<String>;
    fn body(&self, size: usize) -> Option<Vec<u8>>;
}

/// A shadow's answer as mirror `compare`'s comparison sees it.
pub fn shadow_side(compare: &Compare, answer: &impl ShadowAnswer) -> Side {
    let (num_headers, body_size, num_trailers) = answer.sizes();
    if num_headers == 0 {
        return Side::Failed;
    }
    let status: u16 = answer
        .header(":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status == 0 || (status >= 500 && answer.header(UPSTREAM_TIME_HEADER).is_none()) {
        return Side::Failed;
    }
    let body = match compare.body {
        BodyMode::None => Vec::new(),
        _ if body_size == 0 => Vec::new(),
        _ if body_size > compare.max_body_bytes => return Side::TooLarge,
        _ => answer.body(body_size).unwrap_or_default(),
    };
    let grpc_status = answer.header("grpc-status").or_else(|| {
        (num_trailers > 0)
            .then(|| answer.trailer("grpc-status"))
            .flatten()
    });
    Side::Answered(Answer {
        status,
        grpc_status,
        headers: compare
            .headers
            .iter()
            .map(|name| answer.header(name))
            .collect(),
        body,
    })
}
