//! [`Proxy`] over the proxy-wasm ABI: what the logic modules ask of Envoy.

use super::abi;
use crate::proxy::{HttpCall, MetricKind, Proxy, Refused, Shared};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::time::Duration;

/// The proxy this VM runs in (a VM is one worker thread; the host keeps all the state).
#[derive(Debug, Clone, Copy, Default)]
pub struct WasmProxy;

impl Proxy for WasmProxy {
    fn now_ms(&self) -> u64 {
        abi::now_ms().unwrap_or(0)
    }

    fn shared_data(&self, key: &str) -> Result<Shared, Refused> {
        abi::shared_data(key)
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Refused> {
        abi::set_shared_data(key, value, cas)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, Refused> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        abi::define_metric(kind, name)
    }

    fn add_metric(&self, id: u32, delta: i64) {
        // Stats are best effort: a failed increment must not disturb the request.
        let _ = abi::increment_metric(id, delta);
    }

    fn record_metric(&self, id: u32, value: u64) {
        let _ = abi::record_metric(id, value);
    }

    /// Through the SDK, which registers the token so the answer reaches the root context. It
    /// panics on a status other than `BadArgument` and `InternalFailure`, the two Envoy returns.
    fn dispatch(&self, call: HttpCall<'_>) -> Result<u32, Refused> {
        let HttpCall {
            cluster,
            headers,
            body,
            trailers,
            timeout,
        } = call;
        hostcalls::dispatch_http_call(cluster, headers, body, trailers, timeout)
            .map_err(|status| Refused(format!("{status:?}")))
    }

    fn set_tick(&self, period: Duration) -> Result<(), Refused> {
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        abi::set_tick_ms(ms)
    }
}
