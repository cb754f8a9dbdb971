//! Mirroring: which mirrors a request is copied to, and the shadow request itself (headers,
//! authority with the host suffix, body copy). Pure functions; the adapter dispatches.

use crate::hosts::host_of;
use crate::random::Rng;
use std::collections::VecDeque;
use std::rc::Rc;

pub mod header_map;
pub mod outbox;

/// One in a million: the finest sampling step (Envoy's FractionalPercent MILLION).
pub const PER_MILLION: u32 = 1_000_000;

/// Marker header added to every shadow request so receivers and telemetry can tell copies apart.
pub const MARKER_HEADER: &str = "x-split-mirror";

/// A compiled mirror of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub cluster: String,
    /// Share of requests copied, in millionths (100 % = 1,000,000).
    pub per_million: u32,
    pub host_suffix: String,
    pub timeout_ms: u32,
    pub max_body_bytes: usize,
    /// Upper-case methods; `None` copies every method.
    pub methods: Option<Vec<String>>,
    /// Set when Envoy sends the copy: the filter only samples, and writes `cluster` into this
    /// (lower-case) request header for a route's `request_mirror_policies` `cluster_header`.
    pub cluster_header: Option<String>,
    /// Lower-case request headers never copied to this shadow.
    pub strip_headers: Vec<String>,
    /// The shadow's answer compared with the primary's.
    pub compare: Option<crate::compare::Compare>,
}

/// Why a mirror did not copy a request (each one is counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Sampling,
    Method,
    BodyTooLarge,
    InFlightCap,
}

impl Mirror {
    /// Decides for one request whether this mirror copies it: method allowlist first (no random
    /// draw wasted), then the sampling draw, independent of the split and of other mirrors.
    pub fn admit(&self, method: &[u8], rng: &mut Rng) -> Result<(), Skip> {
        if let Some(methods) = &self.methods {
            if !methods.iter().any(|m| m.as_bytes() == method) {
                return Err(Skip::Method);
            }
        }
        let sampled = match self.per_million {
            0 => false,
            PER_MILLION => true,
            share => rng.below(u64::from(PER_MILLION)) < u64::from(share),
        };
        if sampled {
            Ok(())
        } else {
            Err(Skip::Sampling)
        }
    }
}

/// The shadow's authority: `suffix` inserted before any port, as Envoy's request mirror does
/// (`cluster1:8000` → `cluster1-shadow:8000`, `[::1]:80` → `[::1]-shadow:80`).
pub fn shadow_authority(authority: &[u8], suffix: &str) -> Vec<u8> {
    let host = host_of(authority);
    let mut out = Vec::with_capacity(authority.len() + suffix.len());
    out.extend_from_slice(host);
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(&authority[host.len()..]);
    out
}

/// Headers never copied to a shadow: Envoy frames the shadow's body itself (a copied
/// `content-length` without the body hangs the shadow, `transfer-encoding: chunked` plus a body
/// breaks it), `host` would be comma-joined with `:authority`, hop-by-hop headers belong to the
/// client's connection, and `:authority` and the marker are written by us. `te` is hop-by-hop
/// too, except `te: trailers`: see [`TE_TRAILERS`].
const NOT_COPIED: &[&str] = &[
    ":authority",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    MARKER_HEADER,
];

/// The one `te` value a copy keeps. gRPC requires it and gRPC C-core servers (grpcio, the C++
/// server) reset a request without it; in HTTP/2 it is the only value allowed. Any other value
/// is the client's connection's business and is dropped.
const TE_TRAILERS: &str = "trailers";

/// `te: trailers` (any case, surrounding whitespace ignored), the one TE value copied.
fn is_te_trailers(value: &[u8]) -> bool {
    value
        .trim_ascii()
        .eq_ignore_ascii_case(TE_TRAILERS.as_bytes())
}

/// The header list of a shadow request, without `:authority` (per mirror, see
/// [`ShadowHeaders::authority_for`]). Header values that are not UTF-8 are left out: the host ABI
/// used to dispatch takes text only.
#[derive(Debug, Clone, Default)]
pub struct ShadowHeaders {
    /// The kept names and values back to back: one allocation per request, not two per header.
    text: String,
    /// Per kept header: where its name starts, where its value starts, where the value ends.
    kept: Vec<(usize, usize, usize)>,
    authority: Vec<u8>,
}

impl ShadowHeaders {
    pub fn new<'a>(
        request_headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        route_header: &str,
    ) -> Self {
        let mut shadow = ShadowHeaders::default();
        for (name, value) in request_headers {
            if name == b":authority" {
                shadow.authority = value.to_vec();
                continue;
            }
            if name == route_header.as_bytes() || NOT_COPIED.iter().any(|n| n.as_bytes() == name) {
                continue;
            }
            if name == b"te" {
                if is_te_trailers(value) {
                    shadow.push("te", TE_TRAILERS);
                }
                continue;
            }
            if let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) {
                shadow.push(name, value);
            }
        }
        shadow
    }

    fn push(&mut self, name: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(name);
        let middle = self.text.len();
        self.text.push_str(value);
        self.kept.push((start, middle, self.text.len()));
    }

    /// The value of a kept header (`:method`, `:path`...), if the request had it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.kept.iter().find_map(|&(start, middle, end)| {
            (self.text.get(start..middle)? == name).then(|| self.text.get(middle..end))?
        })
    }

    /// `METHOD /path` without the query (for a comparison's log line: no query values logged).
    pub fn request_line(&self) -> String {
        let method = self.get(":method").unwrap_or_default();
        let path = self.get(":path").unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        format!("{method} {path}")
    }

    /// The shadow's `:authority` for `mirror` (the host suffix inserted before any port).
    pub fn authority_for(&self, mirror: &Mirror) -> String {
        String::from_utf8_lossy(&shadow_authority(&self.authority, &mirror.host_suffix))
            .into_owned()
    }

    /// The full header list, `:authority` first, without the `strip`ped (lower-case) names,
    /// borrowed for the dispatch call.
    pub fn pairs<'a>(&'a self, authority: &'a str, strip: &[String]) -> Vec<(&'a str, &'a str)> {
        let mut out = Vec::with_capacity(self.kept.len() + 2);
        out.push((":authority", authority));
        for &(start, middle, end) in &self.kept {
            if let (Some(name), Some(value)) =
                (self.text.get(start..middle), self.text.get(middle..end))
            {
                if !strip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                    out.push((name, value));
                }
            }
        }
        out.push((MARKER_HEADER, "1"));
        out
    }
}

/// A shadow request ready to send: which route and mirror it belongs to (the cluster, timeout
/// and counters come from there), and what to send. Mirrors of one request share the headers,
/// body and trailers.
#[derive(Debug, Clone)]
pub struct Shadow {
    pub route: usize,
    pub mirror: usize,
    /// Set when the answer is compared: the comparison, and whether this copy goes to the
    /// mirror's cluster or to its baseline.
    pub compared: Option<(u64, crate::compare::pending::Role)>,
    pub authority: String,
    pub headers: Rc<ShadowHeaders>,
    pub body: Rc<[u8]>,
    pub trailers: Rc<[(String, String)]>,
}

/// The request body copied as it streams past (never buffered in Envoy), up to `limit` bytes.
#[derive(Debug, Default)]
pub struct BodyCopy {
    data: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl BodyCopy {
    pub fn new(limit: usize) -> Self {
        BodyCopy {
            data: Vec::new(),
            limit,
            overflowed: false,
        }
    }

    /// The most bytes it keeps.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the next `len` bytes still fit: once over the limit, nothing more is kept.
    pub fn wants(&self, len: usize) -> bool {
        !self.overflowed && self.data.len() + len <= self.limit
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.wants(chunk.len()) {
            self.data.extend_from_slice(chunk);
        } else {
            self.overflowed = true;
            self.data = Vec::new();
        }
    }

    /// Marks the copy as too large without looking at the bytes (saves a host call).
    pub fn overflow(&mut self) {
        self.overflowed = true;
        self.data = Vec::new();
    }

    /// The bytes copied so far; `None` if they outgrew the limit.
    pub fn bytes(&self) -> Option<&[u8]> {
        (!self.overflowed).then_some(&self.data[..])
    }

    /// The copied body, to share between the request's mirrors; `None` if it outgrew the limit.
    pub fn into_shared(self) -> Option<Rc<[u8]>> {
        (!self.overflowed).then(|| Rc::from(self.data))
    }
}

/// Shadows this worker has dispatched and not yet seen finish. An entry leaves when the host
/// reports the call done (answer, failure or timeout); as a safety net it also leaves once its
/// timeout has passed, since the host has given up on the call by then.
#[derive(Debug)]
pub struct InFlight {
    cap: usize,
    /// (token, deadline in ms), in dispatch order.
    calls: VecDeque<(u32, u64)>,
}

impl InFlight {
    pub fn new(cap: usize) -> Self {
        InFlight {
            cap,
            calls: VecDeque::new(),
        }
    }

    /// Forgets shadows whose timeout has passed at `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let before = self.calls.len();
        self.calls.retain(|&(_, deadline)| deadline > now_ms);
        before - self.calls.len()
    }

    /// Whether one more shadow may start with `queued` others waiting to be sent (call
    /// [`InFlight::expire`] first).
    pub fn has_room(&self, queued: usize) -> bool {
        self.calls.len() + queued < self.cap
    }

    pub fn started(&mut self, token: u32, deadline_ms: u64) {
        self.calls.push_back((token, deadline_ms));
    }

    /// Records that `token` finished; false if it had already expired.
    pub fn finished(&mut self, token: u32) -> bool {
        match self.calls.iter().position(|&(t, _)| t == token) {
            Some(at) => {
                self.calls.remove(at);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests;
