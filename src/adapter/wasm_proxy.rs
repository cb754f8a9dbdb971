//! [`Proxy`] over proxy-wasm's host calls: what the logic modules ask of Envoy.

use crate::proxy::{HttpCall, MetricKind, Proxy, Refused, Shared};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};
use std::time::Duration;

/// The proxy this VM runs in (a VM is one worker thread; the host keeps all the state).
#[derive(Debug, Clone, Copy, Default)]
pub struct WasmProxy;

fn refused(status: Status) -> Refused {
    Refused(format!("{status:?}"))
}

impl Proxy for WasmProxy {
    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time().map_or(0, |time| {
            time.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        })
    }

    fn shared_data(&self, key: &str) -> Result<Shared, Refused> {
        hostcalls::get_shared_data(key).map_err(refused)
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Refused> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(refused)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, Refused> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        hostcalls::define_metric(kind, name).map_err(refused)
    }

    fn add_metric(&self, id: u32, delta: i64) {
        // Stats are best effort: a failed increment must not disturb the request.
        let _ = hostcalls::increment_metric(id, delta);
    }

    fn record_metric(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn dispatch(&self, call: HttpCall<'_>) -> Result<u32, Refused> {
        hostcalls::dispatch_http_call(
            call.cluster,
            call.headers,
            call.body,
            call.trailers,
            call.timeout,
        )
        .map_err(refused)
    }

    fn set_tick(&self, period: Duration) -> Result<(), Refused> {
        hostcalls::set_tick_period(period).map_err(refused)
    }
}
