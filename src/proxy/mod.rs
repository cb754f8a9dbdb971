//! What the filter asks of the proxy it runs in: the clock, the shared data that all workers
//! read, Envoy stats, HTTP calls to other clusters, and the timer ([`Proxy`]); and the headers
//! of the stream being filtered ([`Headers`]). The logic modules take a
//! `&impl Proxy`; `adapter` implements it over proxy-wasm's host calls, and [`double`] is an
//! in-memory proxy for native unit tests (the model: Kuadrant wasm-shim's resolver trait and
//! mock). Logging goes through the `log` crate, which needs no proxy.

#[cfg(test)]
pub mod double;
pub mod metric;

use std::time::Duration;

/// Why the proxy refused a call: its status, named as proxy-wasm names it (`CasMismatch`,
/// `NotFound`, `BadArgument`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl Refused {
    /// The refusal of a shared-data write whose CAS token is not the current one.
    pub fn cas_mismatch() -> Refused {
        Refused::status(8)
    }

    /// A proxy-wasm status code other than `Ok` (0), by its name.
    pub fn status(code: u32) -> Refused {
        let name = match code {
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            6 => "InvalidMemoryAccess",
            7 => "Empty",
            8 => "CasMismatch",
            10 => "InternalFailure",
            12 => "Unimplemented",
            _ => return Refused(format!("status {code}")),
        };
        Refused(name.to_string())
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of an Envoy stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// A value in the proxy's shared data (all workers of the proxy see it) and the CAS token to
/// hand back when replacing it.
pub type Shared = (Option<Vec<u8>>, Option<u32>);

/// An HTTP call to `cluster`, answered later (or not) to the root context by its token.
pub struct HttpCall<'a> {
    pub cluster: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: Option<&'a [u8]>,
    pub trailers: Vec<(&'a str, &'a str)>,
    pub timeout: Duration,
}

/// The proxy's services, as one worker sees them. A worker is single-threaded: every method
/// takes `&self`.
pub trait Proxy {
    /// Milliseconds since the epoch by the proxy's wall clock (0 if unreadable).
    fn now_ms(&self) -> u64;

    /// The value at `key` in the shared data, with its CAS token.
    fn shared_data(&self, key: &str) -> Result<Shared, Refused>;

    /// Writes `value` at `key`; with `cas`, only if the value is still the one read with it.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Refused>;

    /// Defines a stat and returns its id.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, Refused>;

    /// Adds `delta` to a counter or gauge (gauges may go down). Best effort: errors are dropped.
    fn add_metric(&self, id: u32, delta: i64);

    /// Sets a gauge. Best effort.
    fn record_metric(&self, id: u32, value: u64);

    /// Sends an HTTP call; its token identifies the answer.
    fn dispatch(&self, call: HttpCall<'_>) -> Result<u32, Refused>;

    /// Sets the root context's timer (`Duration::ZERO` stops it).
    fn set_tick(&self, period: Duration) -> Result<(), Refused>;
}

/// The request's or the response's headers of the stream being filtered. A read or write the
/// proxy refuses is reported by the implementation and reads as absent: the stream goes on
/// unchanged.
pub trait Headers {
    /// A header (lower-case name), `None` if absent.
    fn header(&self, name: &str) -> Option<Vec<u8>>;

    /// Sets a header, or removes it (`None`).
    fn set_header(&self, name: &str, value: Option<&[u8]>);

    /// Adds a value after those the header has.
    fn add_header(&self, name: &str, value: &[u8]);

    /// Every header in proxy-wasm's serialized form (`mirror::header_map`), in one buffer.
    fn header_block(&self) -> Option<Vec<u8>>;
}
