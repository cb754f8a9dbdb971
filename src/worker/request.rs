//! The request's side: the headers routing reads, the route header written, and the mirrors
//! sampled; and the response's: its status counted for a rollout, the sticky cookie and the
//! chosen backend's name handed to the client. The choosing is `routing`'s and the sampling `mirror`'s; this is their use on one
//! request.

use super::copy::MirrorCopy;
use super::state::Worker;
use crate::config::Route;
use crate::keys::KeySource;
use crate::metrics::MirrorOutcome;
use crate::mirror::header_map;
use crate::proxy::{Headers, Proxy};
use crate::rollout::guard::status_of_header;
use crate::routing::{RequestHeaders, RequestView};

/// What routing decided for a request.
#[derive(Debug)]
pub struct Routed {
    pub route: usize,
    pub backend: usize,
    /// A minted sticky cookie to hand the client on the response.
    pub set_cookie: Option<String>,
    /// The request's time (ms) on a route with a rollout: its answer is counted.
    pub rollout_at: Option<u64>,
}

/// Request headers read on demand, each at most once per request.
struct Fetched<'r, R> {
    request: &'r R,
    fetched: Vec<(String, Option<Vec<u8>>)>,
}

impl<R: Headers> RequestHeaders for Fetched<'_, R> {
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        if let Some((_, value)) = self.fetched.iter().find(|(n, _)| n == name) {
            return value.clone();
        }
        let value = self.request.header(name);
        self.fetched.push((name.to_string(), value.clone()));
        value
    }
}

impl Worker {
    /// Chooses the backend and writes the route header; `None` if no route matched (then a
    /// route header the client sent is removed: clients never name a cluster).
    #[inline(always)]
    pub fn route_request(&self, proxy: &impl Proxy, request: &impl Headers) -> Option<Routed> {
        let config = &self.config;
        // Each fetched value costs a call back into the VM to allocate it: skip what no route
        // reads.
        let fetch = |name: &str, needed: bool| needed.then(|| request.header(name)).flatten();
        let authority = fetch(":authority", config.needs_authority);
        let path = fetch(":path", config.needs_path);
        let view = RequestView {
            authority: authority.as_deref().unwrap_or_default(),
            path: path.as_deref().unwrap_or_default(),
        };
        let Some(found) = config.match_route(&view) else {
            self.count_unmatched(proxy);
            if request.header(&config.route_header).is_some() {
                request.set_header(&config.route_header, None);
            }
            return None;
        };
        let route = found.route;
        // One clock read per request, and only on routes with a rollout.
        let rollout_at = route.rollout.as_ref().map(|_| proxy.now_ms());
        let split = self
            .rollouts
            .split(proxy, found.index, route, rollout_at.unwrap_or(0));
        let mut headers = Fetched {
            request,
            fetched: Vec::new(),
        };
        let decision =
            self.with_rng(|rng| route.decide_in(split, found.tagged_backend, &mut headers, rng));
        let cluster = route
            .backends
            .get(decision.backend)
            .map(|b| b.cluster.as_bytes());
        // Overwrites whatever the client sent. Envoy clears its route cache on this write
        // (modules of ABI 0.2.1), so the router picks the route again with the header.
        request.set_header(&config.route_header, cluster);
        self.count_request(proxy, found.index, decision.backend, decision.reason);
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

    /// Samples the route's mirrors. A mirror Envoy sends (`cluster_header`) gets its header
    /// set to the cluster, or removed so a client cannot ask for a copy; if any other mirror
    /// admits the request, its copy starts.
    pub fn start_mirror(
        &self,
        proxy: &impl Proxy,
        request: &impl Headers,
        (route_index, route): (usize, &Route),
    ) -> Option<MirrorCopy> {
        // Read only when a mirror filters by method: each fetch allocates in the VM.
        let method = if route.mirrors.iter().any(|m| m.methods.is_some()) {
            request.header(":method").unwrap_or_default()
        } else {
            Vec::new()
        };
        let admitted: Vec<usize> = self.with_rng(|rng| {
            route
                .mirrors
                .iter()
                .enumerate()
                .filter_map(|(i, mirror)| {
                    let admitted = mirror.admit(&method, rng);
                    if let Some(header) = &mirror.cluster_header {
                        let cluster = admitted.is_ok().then_some(mirror.cluster.as_bytes());
                        request.set_header(header, cluster);
                    }
                    let outcome = match admitted {
                        Ok(()) if mirror.cluster_header.is_none() => return Some(i),
                        Ok(()) => MirrorOutcome::Mirrored,
                        Err(skip) => MirrorOutcome::Skipped(skip),
                    };
                    self.count_mirror(proxy, route_index, i, outcome);
                    None
                })
                .collect()
        });
        if admitted.is_empty() {
            return None;
        }
        let block = request.header_block().unwrap_or_default();
        let request_headers = header_map::pairs(&block).unwrap_or_default();
        MirrorCopy::new(self, route_index, admitted, request_headers)
    }
}

impl Worker {
    /// The response's headers: a rollout counts the answer's status class, the client gets a
    /// minted sticky cookie and, if configured, the chosen backend's name.
    #[inline(always)]
    pub fn respond(&self, proxy: &impl Proxy, response: &impl Headers, routed: &mut Routed) {
        // Only routes with a rollout read `:status`; the others pay one branch.
        if let Some(at) = routed.rollout_at.take() {
            let status = response.header(":status");
            if let Some(status) = status.as_deref().and_then(status_of_header) {
                let chosen = (routed.route, routed.backend);
                // A second clock read only where a guard judges latency.
                let timed = self
                    .config
                    .routes
                    .get(routed.route)
                    .and_then(|r| r.rollout.as_ref())
                    .is_some_and(|r| r.times_answers());
                let answered = timed.then(|| proxy.now_ms());
                self.rollouts
                    .record_answer(proxy, &self.config, chosen, status, (at, answered));
            }
        }
        if let Some(cookie) = routed.set_cookie.take() {
            response.add_header("set-cookie", cookie.as_bytes());
        }
        if let Some(name) = &self.config.response_header {
            let route = self.config.routes.get(routed.route);
            if let Some(backend) = route.and_then(|r| r.backends.get(routed.backend)) {
                response.set_header(name, Some(backend.cluster.as_bytes()));
            }
        }
    }
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
