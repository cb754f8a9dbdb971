//! HTTP context: one per request. Hands each callback to the request side (`request`) or to the
//! worker's logic, and never pauses the stream.

use super::abi::{read_body, read_header, read_text_header, report, write_header};
use super::request::{route_request, start_mirror, Routed};
use super::wasm_proxy::WasmProxy;
use crate::compare::answers::PrimaryAnswer;
use crate::rollout::guard::StatusClass;
use crate::worker::{MirrorCopy, Worker};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

pub struct SplitMirrorHttp {
    /// `None` only if the host creates streams for a root that was never configured.
    worker: Option<Rc<Worker>>,
    /// Set when at least one mirror admitted this request and its body is still streaming.
    copy: Option<MirrorCopy>,
    /// What routing decided; `None` without a matching route.
    routed: Option<Routed>,
    /// The primary's answer, collected only once a comparison of this request is open.
    primary: Option<PrimaryAnswer>,
}

impl SplitMirrorHttp {
    pub fn new(worker: Option<Rc<Worker>>) -> Self {
        SplitMirrorHttp {
            worker,
            copy: None,
            routed: None,
            primary: None,
        }
    }

    fn finish_copy(&mut self, trailers: Vec<(String, String)>) {
        if let (Some(copy), Some(worker)) = (self.copy.take(), &self.worker) {
            worker.finish_copy(&WasmProxy, copy, trailers, &mut self.primary);
        }
    }

    /// The response began while the request's copy is still streaming (an early answer): the
    /// primary's answer is collected now for every compared mirror that admitted the request,
    /// as the comparisons are opened only when the copy is complete.
    fn early_answer(&mut self) {
        let (Some(copy), Some(worker), None) = (&self.copy, &self.worker, &self.primary) else {
            return;
        };
        let route = worker.config.routes.get(copy.route);
        let mut primary = PrimaryAnswer::default();
        for &i in &copy.mirrors {
            if let Some(compare) = route.and_then(|r| r.mirrors.get(i)?.compare.as_ref()) {
                primary.include(compare);
            }
        }
        self.primary = Some(primary);
    }
}

impl Context for SplitMirrorHttp {}

impl HttpContext for SplitMirrorHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        if read_header(MapType::HttpRequestHeaders, "x-split-mirror-fault").is_some() {
            // A panic, as a bug would cause: its message goes to Envoy's log (WASI stderr), then
            // the VM traps and Envoy's failure_policy decides what follows.
            #[allow(clippy::panic)]
            {
                panic!("split-mirror: injected fault");
            }
        }
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        let Some(routed) = route_request(&worker) else {
            return Action::Continue;
        };
        let route_index = routed.route;
        self.routed = Some(routed);
        let Some(route) = worker.config.routes.get(route_index) else {
            return Action::Continue;
        };
        if route.mirrors.is_empty() {
            return Action::Continue;
        }
        self.copy = start_mirror(&worker, route_index, route);
        if end_of_stream {
            self.finish_copy(Vec::new());
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(copy) = &mut self.copy else {
            return Action::Continue;
        };
        if copy.body.wants(body_size) {
            if let Some(chunk) = read_body(BufferType::HttpRequestBody, body_size) {
                copy.body.push(&chunk);
            }
        } else {
            copy.body.overflow();
        }
        if end_of_stream {
            self.finish_copy(Vec::new());
        }
        // Never pause the primary: the copy is taken as the chunk streams past.
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.copy.is_none() {
            return Action::Continue;
        }
        let block = super::abi::header_block(MapType::HttpRequestTrailers).unwrap_or_else(|s| {
            report("the request trailers", s);
            None
        });
        let block = block.unwrap_or_default();
        let trailers = crate::mirror::header_map::pairs(&block)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, value)| {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
                Some((text(name)?, text(value)?))
            })
            .collect();
        self.finish_copy(trailers);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        const RESPONSE: MapType = MapType::HttpResponseHeaders;
        self.early_answer();
        if let Some(primary) = &mut self.primary {
            primary.headers(|name| read_text_header(RESPONSE, name), end_of_stream);
        }
        let (Some(worker), Some(routed)) = (&self.worker, &mut self.routed) else {
            return Action::Continue;
        };
        // Only routes with a rollout read `:status`; the others pay one branch.
        if let Some(at) = routed.rollout_at.take() {
            let status = read_header(RESPONSE, ":status");
            if let Some(class) = status.as_deref().and_then(StatusClass::of_header) {
                let chosen = (routed.route, routed.backend);
                let config = &worker.config;
                worker
                    .rollouts
                    .record_answer(&WasmProxy, config, chosen, class, at);
            }
        }
        if let Some(cookie) = routed.set_cookie.take() {
            if let Err(status) = super::abi::add_header(RESPONSE, "set-cookie", cookie.as_bytes()) {
                report("the sticky cookie", status);
            }
        }
        if let Some(name) = &worker.config.response_header {
            let route = worker.config.routes.get(routed.route);
            if let Some(backend) = route.and_then(|r| r.backends.get(routed.backend)) {
                write_header(RESPONSE, name, Some(backend.cluster.as_bytes()));
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(primary) = &mut self.primary {
            primary.body_chunk(body_size, end_of_stream, |size| {
                read_body(BufferType::HttpResponseBody, size)
            });
        }
        // Never pause the primary: the copy is taken as the chunk streams past.
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(primary) = &mut self.primary {
            primary.trailers(read_text_header(
                MapType::HttpResponseTrailers,
                "grpc-status",
            ));
        }
        Action::Continue
    }
}

/// The stream is over (the SDK drops its context in `proxy_on_delete`): the primary's side of
/// each comparison it opened, complete or not, goes to the comparison.
impl Drop for SplitMirrorHttp {
    fn drop(&mut self) {
        if let (Some(primary), Some(worker)) = (self.primary.take(), &self.worker) {
            worker.primary_done(&WasmProxy, &primary);
        }
    }
}
