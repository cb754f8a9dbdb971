//! Root context: parses and validates the configuration once, hands it to HTTP contexts, and
//! sends the shadow requests they queue.

use super::compare::shadow_side;
use super::http::SplitMirrorHttp;
use super::tcp::{SplitMirrorTcp, TcpFilter};
use super::wasm_proxy::WasmProxy;
use super::worker::Worker;
use crate::compare::pending::{Role, Side};
use crate::config::{Config, FilterKind};
use crate::metrics::MirrorOutcome;
use crate::proxy::Proxy;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::ContextType;
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
pub struct SplitMirrorRoot {
    filter: Option<Rc<Worker>>,
    /// Set when loaded as the network filter (root id `split-mirror-tcp`).
    tcp: Option<Rc<TcpFilter>>,
}

impl SplitMirrorRoot {
    /// Sends every queued shadow. Runs in a root callback, so the host reports each call's end
    /// (answer, failure or timeout) back to this context, which outlives the requests.
    fn send_shadows(&self, filter: &Worker) {
        let now = WasmProxy.now_ms();
        for shadow in filter.take_outbox(now) {
            let Some(mirror) = filter
                .config
                .routes
                .get(shadow.route)
                .and_then(|route| route.mirrors.get(shadow.mirror))
            else {
                continue;
            };
            let cluster = match (shadow.compared, &mirror.compare) {
                (Some((_, Role::Baseline)), Some(compare)) => {
                    compare.baseline.as_deref().unwrap_or(&mirror.cluster)
                }
                _ => mirror.cluster.as_str(),
            };
            let headers = shadow
                .headers
                .pairs(&shadow.authority, &mirror.strip_headers);
            let trailers: Vec<(&str, &str)> = shadow
                .trailers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let body = (!shadow.body.is_empty()).then_some(&shadow.body[..]);
            let timeout = Duration::from_millis(u64::from(mirror.timeout_ms));
            let outcome = match self.dispatch_http_call(cluster, headers, body, trailers, timeout) {
                Ok(token) => {
                    filter.shadow_started(token, now + u64::from(mirror.timeout_ms));
                    if let Some((id, role)) = shadow.compared {
                        filter
                            .comparisons
                            .pending
                            .borrow_mut()
                            .dispatched(token, id, role);
                    }
                    MirrorOutcome::Mirrored
                }
                Err(status) => {
                    log::debug!("split-mirror: mirror to {cluster} failed: {status:?}");
                    if let Some((id, role)) = shadow.compared {
                        let done =
                            filter
                                .comparisons
                                .pending
                                .borrow_mut()
                                .copy(id, role, Side::Failed);
                        if let Some(ready) = done {
                            filter.report(&ready, now);
                        }
                    }
                    MirrorOutcome::DispatchFailed
                }
            };
            // The baseline's copy is the comparison's, not one of the mirror's copies.
            if !matches!(shadow.compared, Some((_, Role::Baseline))) {
                filter.count_mirror(shadow.route, shadow.mirror, outcome);
            }
        }
        filter.flush_in_flight_gauge();
    }
}

impl Context for SplitMirrorRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    ) {
        // The shadow's answer never reaches the client; its in-flight slot is freed, and it is
        // read only when it is compared.
        let Some(filter) = &self.filter else {
            return;
        };
        filter.shadow_finished(token_id);
        let compared = filter.comparisons.pending.borrow().mirror_of(token_id);
        let Some((route, mirror)) = compared else {
            return;
        };
        let Some(compare) = filter
            .config
            .routes
            .get(route)
            .and_then(|r| r.mirrors.get(mirror))
            .and_then(|m| m.compare.as_ref())
        else {
            return;
        };
        let side = shadow_side(compare, num_headers, body_size, num_trailers);
        let done = filter
            .comparisons
            .pending
            .borrow_mut()
            .answered(token_id, side);
        if let Some(ready) = done {
            filter.report(&ready, WasmProxy.now_ms());
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
                let filter = Worker::new(config);
                if filter.rollouts.any {
                    // The rollouts' tick (the mirrors' faster tick also serves it).
                    if let Err(status) = hostcalls::set_tick_period(filter.idle_tick_period()) {
                        log::warn!("split-mirror: cannot schedule the rollout tick ({status:?})");
                    }
                }
                self.filter = Some(Rc::new(filter));
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
            filter
                .rollouts
                .tick(&WasmProxy, &filter.config, WasmProxy.now_ms());
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
