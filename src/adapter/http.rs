//! HTTP context: one per request. Reads the few headers routing needs, writes the route header,
//! and copies the request to sampled mirrors without ever pausing it.

use super::compare::PrimaryAnswer;
use super::wasm_proxy::WasmProxy;
use super::worker::Worker;
use crate::compare::pending::{Role, Side};
use crate::compare::Compare;
use crate::config::Route;
use crate::metrics::MirrorOutcome;
use crate::mirror::{header_map, BodyCopy, Shadow, ShadowHeaders, Skip};
use crate::proxy::Proxy;
use crate::rollout::guard::StatusClass;
use crate::routing::keys::KeySource;
use crate::routing::{RequestHeaders, RequestView};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::rc::Rc;

pub struct SplitMirrorHttp {
    /// `None` only if the host creates streams for a root that was never configured.
    filter: Option<Rc<Worker>>,
    /// Set when at least one mirror admitted this request and its body is still streaming.
    pending: Option<PendingMirror>,
    /// A minted sticky cookie to hand the client on the response.
    set_cookie: Option<String>,
    /// `(route, backend)` chosen, kept only when `response_header` is configured.
    chosen: Option<(usize, usize)>,
    /// The primary's answer, collected only when a mirror compares this request's copies.
    primary: Option<PrimaryAnswer>,
    /// `(route, backend)` chosen on a route with a rollout, and the request's time: its
    /// response is counted.
    counted: Option<((usize, usize), u64)>,
}

/// Request headers read from the host on demand, each at most once per request.
#[derive(Default)]
struct HostHeaders {
    fetched: Vec<(String, Option<Vec<u8>>)>,
}

impl RequestHeaders for HostHeaders {
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        if let Some((_, value)) = self.fetched.iter().find(|(n, _)| n == name) {
            return value.clone();
        }
        let value = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten();
        self.fetched.push((name.to_string(), value.clone()));
        value
    }
}

/// A shadow copy being assembled while the primary request streams past.
struct PendingMirror {
    route: usize,
    /// Indexes into the route's `mirrors` that admitted this request.
    mirrors: Vec<usize>,
    headers: ShadowHeaders,
    body: BodyCopy,
}

impl SplitMirrorHttp {
    pub fn new(filter: Option<Rc<Worker>>) -> Self {
        SplitMirrorHttp {
            filter,
            pending: None,
            set_cookie: None,
            chosen: None,
            primary: None,
            counted: None,
        }
    }

    /// Chooses the backend and writes the route header; returns the matched route's index.
    fn route_request(&mut self, filter: &Worker) -> Option<usize> {
        let route_header = filter.config.route_header.as_str();
        // Each fetched value costs a call back into the VM to allocate it: skip what no route reads.
        let fetch = |name, needed| {
            if needed {
                self.get_http_request_header_bytes(name)
            } else {
                None
            }
        };
        let authority = fetch(":authority", filter.config.needs_authority);
        let path = fetch(":path", filter.config.needs_path);
        let request = RequestView {
            authority: authority.as_deref().unwrap_or_default(),
            path: path.as_deref().unwrap_or_default(),
        };
        match filter.config.match_route(&request) {
            Some(found) => {
                let route = found.route;
                let mut headers = HostHeaders::default();
                // One clock read per request, and only on routes with a rollout.
                let now = route.rollout.as_ref().map_or(0, |_| WasmProxy.now_ms());
                let split = filter.rollouts.split(&WasmProxy, found.index, route, now);
                let decision = filter.with_rng(|rng| {
                    route.decide_in(split, found.tagged_backend, &mut headers, rng)
                });
                if route.rollout.is_some() {
                    self.counted = Some(((found.index, decision.backend), now));
                }
                let cluster = route
                    .backends
                    .get(decision.backend)
                    .map(|b| b.cluster.as_str());
                // Overwrites whatever the client sent: clients never name a cluster. Envoy
                // clears its route cache on this write (modules of ABI 0.2.1), so the router
                // picks the route again with the header, even if one was chosen before.
                self.set_http_request_header(route_header, cluster);
                filter.count_request(found.index, decision.backend, decision.reason);
                if filter.config.response_header.is_some() {
                    self.chosen = Some((found.index, decision.backend));
                }
                if let (Some(key), Some(sticky)) = (decision.mint_cookie, &route.sticky) {
                    self.set_cookie = sticky_set_cookie(&sticky.source, &key);
                }
                Some(found.index)
            }
            None => {
                filter.count_unmatched();
                if self.get_http_request_header_bytes(route_header).is_some() {
                    self.set_http_request_header(route_header, None);
                }
                None
            }
        }
    }

    /// Samples the route's mirrors. A mirror Envoy sends (`cluster_header`) gets its header set
    /// to the cluster, or removed so a client cannot ask for a copy; if any other mirror admits
    /// the request, its shadow copy starts.
    fn start_mirror(
        &self,
        filter: &Worker,
        route_index: usize,
        route: &Route,
    ) -> Option<PendingMirror> {
        // Read only when a mirror filters by method: each fetch allocates in the VM.
        let method = if route.mirrors.iter().any(|m| m.methods.is_some()) {
            self.get_http_request_header_bytes(":method")
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let admitted: Vec<usize> = filter.with_rng(|rng| {
            route
                .mirrors
                .iter()
                .enumerate()
                .filter_map(|(i, mirror)| {
                    let admitted = mirror.admit(&method, rng);
                    if let Some(header) = &mirror.cluster_header {
                        let cluster = admitted.is_ok().then_some(mirror.cluster.as_str());
                        self.set_http_request_header(header, cluster);
                    }
                    let outcome = match admitted {
                        Ok(()) if mirror.cluster_header.is_none() => return Some(i),
                        Ok(()) => MirrorOutcome::Mirrored,
                        Err(skip) => MirrorOutcome::Skipped(skip),
                    };
                    filter.count_mirror(route_index, i, outcome);
                    None
                })
                .collect()
        });
        if admitted.is_empty() {
            return None;
        }
        let block = request_header_block().unwrap_or_default();
        let request_headers = header_map::pairs(&block).unwrap_or_default();
        let limit = admitted
            .iter()
            .filter_map(|&i| route.mirrors.get(i))
            .map(|mirror| mirror.max_body_bytes)
            .max()
            .unwrap_or(0);
        let mut body = BodyCopy::new(limit);
        // A declared length over every limit: nothing to copy, say so at dispatch.
        let declared: Option<usize> = request_headers
            .iter()
            .find(|(name, _)| *name == b"content-length")
            .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse().ok());
        if declared.is_some_and(|length| length > limit) {
            body.overflow();
        }
        Some(PendingMirror {
            route: route_index,
            mirrors: admitted,
            headers: ShadowHeaders::new(request_headers, &filter.config.route_header),
            body,
        })
    }

    /// Hands the finished copy, one shadow per admitted mirror, to the root context to send;
    /// a compared mirror opens its comparison and, with a baseline, sends the baseline a copy.
    fn finish_mirror(
        &mut self,
        filter: &Worker,
        pending: PendingMirror,
        trailers: Vec<(String, String)>,
    ) {
        let Some(route) = filter.config.routes.get(pending.route) else {
            return;
        };
        let (headers, trailers) = (Rc::new(pending.headers), Rc::from(trailers));
        // `None` when the body outgrew the largest limit of the admitted mirrors.
        let body = pending.body.into_shared();
        for &i in &pending.mirrors {
            let Some(mirror) = route.mirrors.get(i) else {
                continue;
            };
            let Some(body) = body.as_ref().filter(|b| b.len() <= mirror.max_body_bytes) else {
                let skip = MirrorOutcome::Skipped(Skip::BodyTooLarge);
                filter.count_mirror(pending.route, i, skip);
                continue;
            };
            let shadow = Shadow {
                route: pending.route,
                mirror: i,
                compared: None,
                authority: headers.authority_for(mirror),
                headers: headers.clone(),
                body: Rc::clone(body),
                trailers: Rc::clone(&trailers),
            };
            match &mirror.compare {
                None => {
                    filter.enqueue(shadow);
                }
                Some(compare) => self.send_compared(filter, shadow, mirror.timeout_ms, compare),
            }
        }
    }

    /// Opens the comparison of `shadow`'s mirror and queues the candidate's copy, and the
    /// baseline's if there is one. At the cap the copy is skipped like any other.
    fn send_compared(
        &mut self,
        filter: &Worker,
        shadow: Shadow,
        timeout_ms: u32,
        compare: &Compare,
    ) {
        let (now, route_index, mirror_index) = (WasmProxy.now_ms(), shadow.route, shadow.mirror);
        // The primary may stream for a while after the shadow answered: wait for it too.
        let deadline = now + u64::from(timeout_ms) + PRIMARY_GRACE_MS;
        // From the headers already copied: a body or trailers callback cannot read them again
        // (the host refuses, and the SDK's reader panics on that).
        let request = shadow.headers.request_line();
        let opened = filter.comparisons.pending.borrow_mut().open(
            shadow.route,
            shadow.mirror,
            request,
            compare.baseline.is_some(),
            deadline,
        );
        let Some(id) = opened else {
            let skip = MirrorOutcome::Skipped(Skip::InFlightCap);
            filter.count_mirror(shadow.route, shadow.mirror, skip);
            return;
        };
        let baseline = compare.baseline.is_some().then(|| Shadow {
            compared: Some((id, Role::Baseline)),
            ..shadow.clone()
        });
        if !filter.enqueue(Shadow {
            compared: Some((id, Role::Candidate)),
            ..shadow
        }) {
            filter.comparisons.pending.borrow_mut().abandon(id);
            return;
        }
        if let Some(baseline) = baseline {
            if !filter.enqueue(baseline) {
                let done =
                    filter
                        .comparisons
                        .pending
                        .borrow_mut()
                        .copy(id, Role::Baseline, Side::Failed);
                if let Some(ready) = done {
                    filter.report(&ready, now);
                }
            }
        }
        if let Some(primary) = &mut self.primary {
            primary.opened.push((route_index, mirror_index, id));
        }
    }
}

/// How long a comparison waits for the primary's end after the shadow's timeout.
const PRIMARY_GRACE_MS: u64 = 30_000;

/// Max-Age of a minted sticky cookie: 30 days.
const STICKY_COOKIE_MAX_AGE_S: u32 = 30 * 24 * 3600;

/// The Set-Cookie value for a minted sticky key (the key is hex: no quoting needed).
fn sticky_set_cookie(source: &KeySource, key: &str) -> Option<String> {
    match source {
        KeySource::Cookie(name) => Some(format!(
            "{name}={key}; Path=/; Max-Age={STICKY_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax"
        )),
        KeySource::Header(_) => None,
    }
}

impl Context for SplitMirrorHttp {}

impl HttpContext for SplitMirrorHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        if self
            .get_http_request_header_bytes("x-split-mirror-fault")
            .is_some()
        {
            // A panic, as a bug would cause: its message goes to Envoy's log (WASI stderr), then
            // the VM traps and Envoy's failure_policy decides what follows.
            #[allow(clippy::panic)]
            {
                panic!("split-mirror: injected fault");
            }
        }
        let Some(filter) = self.filter.clone() else {
            return Action::Continue;
        };
        let Some(route_index) = self.route_request(&filter) else {
            return Action::Continue;
        };
        let Some(route) = filter.config.routes.get(route_index) else {
            return Action::Continue;
        };
        if route.mirrors.is_empty() {
            return Action::Continue;
        }
        if let Some(pending) = self.start_mirror(&filter, route_index, route) {
            let compares: Vec<&Compare> = pending
                .mirrors
                .iter()
                .filter_map(|&i| route.mirrors.get(i)?.compare.as_ref())
                .collect();
            if !compares.is_empty() {
                self.primary = Some(PrimaryAnswer::new(compares.into_iter()));
            }
            if end_of_stream {
                self.finish_mirror(&filter, pending, Vec::new());
            } else {
                self.pending = Some(pending);
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(mut pending) = self.pending.take() else {
            return Action::Continue;
        };
        if pending.body.wants(body_size) {
            if let Some(chunk) = self.get_http_request_body(0, body_size) {
                pending.body.push(&chunk);
            }
        } else {
            pending.body.overflow();
        }
        if end_of_stream {
            if let Some(filter) = self.filter.clone() {
                self.finish_mirror(&filter, pending, Vec::new());
            }
        } else {
            self.pending = Some(pending);
        }
        // Never pause the primary: the copy is taken as the chunk streams past.
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if let Some(primary) = &mut self.primary {
            primary.headers(end_of_stream);
        }
        // Only routes with a rollout read `:status`; the others pay one branch.
        if let Some((chosen, at)) = self.counted.take() {
            if let Some(filter) = &self.filter {
                let status = self.get_http_response_header_bytes(":status");
                if let Some(class) = status.as_deref().and_then(StatusClass::of_header) {
                    filter
                        .rollouts
                        .record_answer(&WasmProxy, &filter.config, chosen, class, at);
                }
            }
        }
        if let Some(cookie) = self.set_cookie.take() {
            self.add_http_response_header("set-cookie", &cookie);
        }
        if let (Some((route, backend)), Some(filter)) = (self.chosen, &self.filter) {
            let cluster = filter
                .config
                .routes
                .get(route)
                .and_then(|r| r.backends.get(backend));
            if let (Some(name), Some(backend)) = (&filter.config.response_header, cluster) {
                self.set_http_response_header(name, Some(&backend.cluster));
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(primary) = &mut self.primary {
            primary.body_chunk(body_size, end_of_stream);
        }
        // Never pause the primary: the copy is taken as the chunk streams past.
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(primary) = &mut self.primary {
            primary.trailers();
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if let (Some(pending), Some(filter)) = (self.pending.take(), self.filter.clone()) {
            let trailers = self
                .get_http_request_trailers_bytes()
                .into_iter()
                .filter_map(|(name, value)| Some((name, String::from_utf8(value).ok()?)))
                .collect();
            self.finish_mirror(&filter, pending, trailers);
        }
        Action::Continue
    }
}

/// The stream is over (the SDK drops its context in `proxy_on_delete`): the primary's side of
/// each comparison it opened, complete or not, goes to the comparison.
impl Drop for SplitMirrorHttp {
    fn drop(&mut self) {
        let (Some(primary), Some(filter)) = (self.primary.take(), self.filter.as_ref()) else {
            return;
        };
        let now = WasmProxy.now_ms();
        for &(route, mirror, id) in &primary.opened {
            let compare = filter
                .config
                .routes
                .get(route)
                .and_then(|r| r.mirrors.get(mirror))
                .and_then(|m| m.compare.as_ref());
            let Some(compare) = compare else {
                continue;
            };
            let done = filter
                .comparisons
                .pending
                .borrow_mut()
                .primary(id, primary.side(compare));
            if let Some(ready) = done {
                filter.report(&ready, now);
            }
        }
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    // The ABI's header map read, declared as the SDK declares it (MapType and Status are u32).
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// All request headers in the host's serialized form (see `mirror::header_map`), in one buffer:
/// the SDK's reader would allocate a `String` and a `Vec` per header.
fn request_header_block() -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host has written a buffer of `size` bytes that it allocated through
    // the SDK's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`, then forgotten), so
    // taking it back as that `Vec` frees it correctly; this is what the SDK's own readers do.
    unsafe {
        let status =
            proxy_get_header_map_pairs(MapType::HttpRequestHeaders as u32, &mut data, &mut size);
        (status == 0 && !data.is_null()).then(|| Vec::from_raw_parts(data, size, size))
    }
}
