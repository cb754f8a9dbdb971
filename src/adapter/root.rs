//! Root context: parses and validates the configuration once, hands it to HTTP contexts, and
//! sends the shadow requests they queue.

use super::host::{now_ms, Filter};
use super::http::SplitMirrorHttp;
use super::tcp::{SplitMirrorTcp, TcpFilter};
use crate::config::{Config, FilterKind};
use crate::metrics::MirrorOutcome;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::ContextType;
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
pub struct SplitMirrorRoot {
    filter: Option<Rc<Filter>>,
    /// Set when loaded as the network filter (root id `split-mirror-tcp`).
    tcp: Option<Rc<TcpFilter>>,
}

impl SplitMirrorRoot {
    /// Sends every queued shadow. Runs in a root callback, so the host reports each call's end
    /// (answer, failure or timeout) back to this context, which outlives the requests.
    fn send_shadows(&self, filter: &Filter) {
        let now = now_ms(self.get_current_time());
        for shadow in filter.take_outbox(now) {
            let Some(mirror) = filter
                .config
                .routes
                .get(shadow.route)
                .and_then(|route| route.mirrors.get(shadow.mirror))
            else {
                continue;
            };
            let headers = shadow.headers.pairs(&shadow.authority);
            let trailers: Vec<(&str, &str)> = shadow
                .trailers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let body = (!shadow.body.is_empty()).then_some(&shadow.body[..]);
            let timeout = Duration::from_millis(u64::from(mirror.timeout_ms));
            let outcome =
                match self.dispatch_http_call(&mirror.cluster, headers, body, trailers, timeout) {
                    Ok(token) => {
                        filter.shadow_started(token, now + u64::from(mirror.timeout_ms));
                        MirrorOutcome::Mirrored
                    }
                    Err(status) => {
                        log::debug!(
                            "split-mirror: mirror to {} failed: {status:?}",
                            mirror.cluster
                        );
                        MirrorOutcome::DispatchFailed
                    }
                };
            filter.counters.mirror(shadow.route, shadow.mirror, outcome);
        }
        filter.flush_in_flight_gauge();
    }
}

impl Context for SplitMirrorRoot {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, _: usize, _: usize) {
        // The shadow's answer is ignored (fire and forget); its in-flight slot is freed.
        if let Some(filter) = &self.filter {
            filter.shadow_finished(token_id);
        }
    }
}

impl RootContext for SplitMirrorRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        // Follow Envoy's log level (it may have changed since the VM started).
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        let json = self.get_plugin_configuration().unwrap_or_default();
        let root_id = self
            .get_property(vec!["plugin_root_id"])
            .unwrap_or_default();
        let kind = FilterKind::from_root_id(&root_id);
        match Config::from_json(&json).and_then(|c| c.check_kind(kind).map(|()| c)) {
            Ok(config) if kind == FilterKind::Tcp => {
                self.tcp = Some(Rc::new(TcpFilter::new(config)));
                true
            }
            Ok(config) => {
                self.filter = Some(Rc::new(Filter::new(config)));
                true
            }
            Err(error) => {
                // Returning false makes Envoy refuse this configuration and keep the old one.
                log::error!("split-mirror: invalid configuration: {error}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(filter) = self.filter.clone() {
            self.send_shadows(&filter);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SplitMirrorHttp::new(self.filter.clone())))
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(SplitMirrorTcp::new(self.tcp.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        match self.tcp {
            Some(_) => Some(ContextType::StreamContext),
            None => Some(ContextType::HttpContext),
        }
    }
}
