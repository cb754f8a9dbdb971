//! The request's side of the HTTP context: the headers routing reads, the route header written,
//! and the mirrors sampled. The choosing and the copying are the pure modules'.

use super::abi::{self, read_header, write_header};
use super::wasm_proxy::WasmProxy;
use crate::config::Route;
use crate::metrics::MirrorOutcome;
use crate::mirror::header_map;
use crate::proxy::Proxy;
use crate::routing::keys::KeySource;
use crate::routing::{RequestHeaders, RequestView};
use crate::worker::{MirrorCopy, Worker};
use proxy_wasm::types::MapType;

const REQUEST: MapType = MapType::HttpRequestHeaders;

/// What routing decided for a request.
pub struct Routed {
    pub route: usize,
    pub backend: usize,
    /// A minted sticky cookie to hand the client on the response.
    pub set_cookie: Option<String>,
    /// The request's time (ms) on a route with a rollout: its answer is counted.
    pub rollout_at: Option<u64>,
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
        let value = read_header(REQUEST, name);
        self.fetched.push((name.to_string(), value.clone()));
        value
    }
}

/// Chooses the backend and writes the route header; `None` if no route matched (then a route
/// header the client sent is removed: clients never name a cluster).
pub fn route_request(worker: &Worker) -> Option<Routed> {
    let config = &worker.config;
    // Each fetched value costs a call back into the VM to allocate it: skip what no route reads.
    let fetch = |name: &str, needed: bool| needed.then(|| read_header(REQUEST, name)).flatten();
    let authority = fetch(":authority", config.needs_authority);
    let path = fetch(":path", config.needs_path);
    let request = RequestView {
        authority: authority.as_deref().unwrap_or_default(),
        path: path.as_deref().unwrap_or_default(),
    };
    let Some(found) = config.match_route(&request) else {
        worker.count_unmatched(&WasmProxy);
        if read_header(REQUEST, &config.route_header).is_some() {
            write_header(REQUEST, &config.route_header, None);
        }
        return None;
    };
    let route = found.route;
    // One clock read per request, and only on routes with a rollout.
    let rollout_at = route.rollout.as_ref().map(|_| WasmProxy.now_ms());
    let split = worker
        .rollouts
        .split(&WasmProxy, found.index, route, rollout_at.unwrap_or(0));
    let mut headers = HostHeaders::default();
    let decision =
        worker.with_rng(|rng| route.decide_in(split, found.tagged_backend, &mut headers, rng));
    let cluster = route
        .backends
        .get(decision.backend)
        .map(|b| b.cluster.as_bytes());
    // Overwrites whatever the client sent. Envoy clears its route cache on this write (modules
    // of ABI 0.2.1), so the router picks the route again with the header.
    write_header(REQUEST, &config.route_header, cluster);
    worker.count_request(&WasmProxy, found.index, decision.backend, decision.reason);
    let set_cookie = match (decision.mint_cookie, &route.sticky) {
        (Some(key), Some(sticky)) => sticky_set_cookie(&sticky.source, &key),
        _ => None,
    };
    Some(Routed {
        route: found.index,
        backend: decision.backend,
        set_cookie,
        rollout_at,
    })
}

/// Samples the route's mirrors. A mirror Envoy sends (`cluster_header`) gets its header set to
/// the cluster, or removed so a client cannot ask for a copy; if any other mirror admits the
/// request, its copy starts.
pub fn start_mirror(worker: &Worker, route_index: usize, route: &Route) -> Option<MirrorCopy> {
    // Read only when a mirror filters by method: each fetch allocates in the VM.
    let method = if route.mirrors.iter().any(|m| m.methods.is_some()) {
        read_header(REQUEST, ":method").unwrap_or_default()
    } else {
        Vec::new()
    };
    let admitted: Vec<usize> = worker.with_rng(|rng| {
        route
            .mirrors
            .iter()
            .enumerate()
            .filter_map(|(i, mirror)| {
                let admitted = mirror.admit(&method, rng);
                if let Some(header) = &mirror.cluster_header {
                    let cluster = admitted.is_ok().then_some(mirror.cluster.as_bytes());
                    write_header(REQUEST, header, cluster);
                }
                let outcome = match admitted {
                    Ok(()) if mirror.cluster_header.is_none() => return Some(i),
                    Ok(()) => MirrorOutcome::Mirrored,
                    Err(skip) => MirrorOutcome::Skipped(skip),
                };
                worker.count_mirror(&WasmProxy, route_index, i, outcome);
                None
            })
            .collect()
    });
    if admitted.is_empty() {
        return None;
    }
    let block = abi::header_block(REQUEST).unwrap_or_else(|status| {
        abi::report("the request headers", status);
        None
    });
    let block = block.unwrap_or_default();
    let request_headers = header_map::pairs(&block).unwrap_or_default();
    MirrorCopy::new(worker, route_index, admitted, request_headers)
}

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
