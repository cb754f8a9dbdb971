//! Root context: parses and validates the configuration once, hands it to the request
//! contexts, and on its tick sends the shadows they queued; the answers of those calls come
//! back here.

use super::abi::{self, read_text_header};
use super::http::SplitMirrorHttp;
use super::tcp::SplitMirrorTcp;
use super::wasm_proxy::WasmProxy;
use crate::compare::answers::ShadowAnswer;
use crate::config::{Config, FilterKind};
use crate::proxy::Proxy;
use crate::random::Rng;
use crate::tcp::connection::TcpWorker;
use crate::worker::Worker;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};
use std::rc::Rc;

#[derive(Default)]
pub struct SplitMirrorRoot {
    worker: Option<Rc<Worker>>,
    /// Set when loaded as the network filter (root id `split-mirror-tcp`).
    tcp: Option<Rc<TcpWorker>>,
}

/// The answer of an HTTP call, read from the host on demand.
struct CallAnswer(usize, usize, usize);

impl ShadowAnswer for CallAnswer {
    fn sizes(&self) -> (usize, usize, usize) {
        (self.0, self.1, self.2)
    }

    fn header(&self, name: &str) -> Option<String> {
        read_text_header(MapType::HttpCallResponseHeaders, name)
    }

    fn trailer(&self, name: &str) -> Option<String> {
        read_text_header(MapType::HttpCallResponseTrailers, name)
    }

    fn body(&self, size: usize) -> Option<Vec<u8>> {
        abi::read_body(BufferType::HttpCallResponseBody, size)
    }
}

impl Context for SplitMirrorRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        // The shadow's answer never reaches the client.
        if let Some(worker) = &self.worker {
            let answer = CallAnswer(headers, body, trailers);
            worker.shadow_answered(&WasmProxy, token, &answer);
        }
    }
}

impl RootContext for SplitMirrorRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        // Follow Envoy's log level (it may have changed since the VM started).
        if let Some(level) = abi::log_level() {
            proxy_wasm::set_log_level(level);
        }
        let json = abi::buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let root_id = abi::property(&["plugin_root_id"])
            .ok()
            .flatten()
            .unwrap_or_default();
        let kind = FilterKind::from_root_id(&root_id);
        match Config::from_json(&json).and_then(|c| c.check_kind(kind).map(|()| c)) {
            Ok(config) if kind == FilterKind::Tcp => {
                let worker = TcpWorker::new(&WasmProxy, config, Rng::from_entropy());
                self.tcp = Some(Rc::new(worker));
                true
            }
            Ok(config) => {
                let worker = Worker::new(&WasmProxy, config, Rng::from_entropy());
                if worker.rollouts.any {
                    // The rollouts' tick (the mirrors' faster tick also serves it).
                    if let Err(refused) = WasmProxy.set_tick(worker.idle_tick_period()) {
                        log::warn!("split-mirror: cannot schedule the rollout tick ({refused})");
                    }
                }
                self.worker = Some(Rc::new(worker));
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
        if let Some(worker) = &self.worker {
            worker.tick(&WasmProxy);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SplitMirrorHttp::new(self.worker.clone())))
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
