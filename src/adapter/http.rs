//! HTTP context: one per request. Hands each callback to the worker's logic, and never pauses
//! the stream.

use super::abi::{self, read_body, read_header, read_text_header, report, write_header};
use super::wasm_proxy::WasmProxy;
use crate::compare::answers::PrimaryAnswer;
use crate::mirror::header_map;
use crate::proxy::Headers;
use crate::worker::{MirrorCopy, Routed, Worker};
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
}

/// One header map of the current HTTP context.
struct StreamHeaders(MapType);

const REQUEST: StreamHeaders = StreamHeaders(MapType::HttpRequestHeaders);
const RESPONSE: StreamHeaders = StreamHeaders(MapType::HttpResponseHeaders);

impl Headers for StreamHeaders {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        read_header(self.0, name)
    }

    fn set_header(&self, name: &str, value: Option<&[u8]>) {
        write_header(self.0, name, value);
    }

    fn add_header(&self, name: &str, value: &[u8]) {
        if let Err(refused) = abi::add_header(self.0, name, value) {
            report("a header write", refused);
        }
    }

    fn header_block(&self) -> Option<Vec<u8>> {
        abi::header_block(self.0).unwrap_or_else(|refused| {
            report("the headers", refused);
            None
        })
    }
}

impl Context for SplitMirrorHttp {}

impl HttpContext for SplitMirrorHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        if REQUEST.header("x-split-mirror-fault").is_some() {
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
        let Some(routed) = worker.route_request(&WasmProxy, &REQUEST) else {
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
        self.copy = worker.start_mirror(&WasmProxy, &REQUEST, (route_index, route));
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
        let block = abi::header_block(MapType::HttpRequestTrailers).unwrap_or_else(|s| {
            report("the request trailers", s);
            None
        });
        self.finish_copy(header_map::text_pairs(&block.unwrap_or_default()));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if let (Some(copy), Some(worker), None) = (&self.copy, &self.worker, &self.primary) {
            // An answer before the request's copy is complete (comparisons open only then).
            self.primary = Some(worker.early_answer(copy));
        }
        if let Some(primary) = &mut self.primary {
            primary.headers(|name| read_text_header(RESPONSE.0, name), end_of_stream);
        }
        if let (Some(worker), Some(routed)) = (&self.worker, &mut self.routed) {
            worker.respond(&WasmProxy, &RESPONSE, routed);
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
