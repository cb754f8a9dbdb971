//! Route lookup whose cost does not grow with the number of routes: built once per
//! configuration, it maps a request's host to the few routes that can match it.
//!
//! Every route is listed under each key that can match it: its exact hosts and tagged hosts
//! (`<tag>-<host>`) by the whole host, its `*.domain` wildcards by the suffix `.domain`, or, with
//! no `hosts`, in the list of routes for any host. Each list is in config order, so the first
//! route of a list whose path prefix matches is that list's best, and the request takes the
//! smallest such route over all lists: the same first match as reading the routes in order.
//!
//! It knows routes only by their position, hosts and tagged hosts: the caller (routing) says
//! whose path matches, so the index sits below both the configuration and routing.

use crate::hash::{fnv1a64_step, FNV1A64_EMPTY};
use crate::hosts::{host_of, HostPattern};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug)]
pub struct RouteIndex {
    /// By exact host: routes listing it in `hosts`, and routes with it as a tagged host.
    whole_hosts: FoldedMap<HostCandidates>,
    /// By wildcard suffix (`*.example.com` as `.example.com`): the routes listing it.
    subdomains: FoldedMap<Vec<usize>>,
    /// Byte lengths of the shortest and longest suffix in `subdomains`: a host's suffixes
    /// outside are not looked up.
    shortest_suffix: usize,
    longest_suffix: usize,
    /// Routes without `hosts`, which match any host.
    any_host: Vec<usize>,
    /// How many routes were indexed: the bound while no route matched.
    route_count: usize,
}

/// What the index knows of one route.
#[derive(Debug, Clone, Copy)]
pub struct RouteHosts<'r> {
    /// Empty means any host.
    pub hosts: &'r [HostPattern],
    /// `(<tag>-<host>` lower-case, backend index)`.
    pub tagged_hosts: &'r [(String, usize)],
}

/// The route a request's host selects, by position in config order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMatch {
    pub index: usize,
    /// The backend a tagged host named (`candidate-httpbin`).
    pub tagged_backend: Option<usize>,
}

/// The routes one whole host can match, in config order.
#[derive(Debug, Default)]
struct HostCandidates {
    /// Routes with this host among their `hosts`.
    routes: Vec<usize>,
    /// `(route, backend)` for routes with this host as a tagged host.
    tagged: Vec<(usize, usize)>,
}

impl RouteIndex {
    /// Indexes `routes` in config order.
    pub fn new<'r>(routes: impl IntoIterator<Item = RouteHosts<'r>>) -> RouteIndex {
        let mut index = RouteIndex {
            whole_hosts: FoldedMap::default(),
            subdomains: FoldedMap::default(),
            shortest_suffix: usize::MAX,
            longest_suffix: 0,
            any_host: Vec::new(),
            route_count: 0,
        };
        for (route_index, route) in routes.into_iter().enumerate() {
            index.route_count = route_index + 1;
            if route.hosts.is_empty() {
                index.any_host.push(route_index);
            }
            for pattern in route.hosts {
                let candidates = match pattern {
                    HostPattern::Exact(host) => &mut index.whole_hosts.entry(host).routes,
                    HostPattern::Subdomains(suffix) => {
                        index.shortest_suffix = index.shortest_suffix.min(suffix.len());
                        index.longest_suffix = index.longest_suffix.max(suffix.len());
                        index.subdomains.entry(suffix)
                    }
                };
                push_once(candidates, route_index);
            }
            for (tagged_host, backend) in route.tagged_hosts {
                let tagged = &mut index.whole_hosts.entry(tagged_host).tagged;
                // Two tags can spell the same host (`a-b` + `c`, `a` + `b-c`): the route's
                // first entry wins, as in its own search.
                if tagged.last().map(|&(r, _)| r) != Some(route_index) {
                    tagged.push((route_index, *backend));
                }
            }
        }
        index
    }

    /// The first route (in config order) whose hosts or tagged hosts match `authority` and
    /// whose path matches (`path_matches(route index)`). A route's own hosts take precedence
    /// over its tagged hosts.
    pub fn find(
        &self,
        authority: &[u8],
        path_matches: impl Fn(usize) -> bool,
    ) -> Option<HostMatch> {
        let path_matches = &path_matches;
        // The best route so far; `route_count` while there is none.
        let mut first = first_below(&self.any_host, self.route_count, path_matches);
        let host = host_of(authority);
        // One pass from the last byte yields the hash of every suffix, the whole host last.
        let mut hash = FoldedHash::EMPTY;
        for (at, &byte) in host.iter().enumerate().rev() {
            hash = hash.prepend(byte);
            // `.domain` with a non-empty subdomain before it, as long as some wildcard's.
            let is_wildcard_suffix = byte == b'.' && at > 0;
            let suffix_length = host.len() - at;
            let has_that_length =
                (self.shortest_suffix..=self.longest_suffix).contains(&suffix_length);
            if is_wildcard_suffix && has_that_length {
                if let Some(candidates) = self.subdomains.get(hash, &host[at..]) {
                    first = first_below(candidates, first, path_matches);
                }
            }
        }
        let mut tagged_backend = None;
        if let Some(candidates) = self.whole_hosts.get(hash, host) {
            first = first_below(&candidates.routes, first, path_matches);
            // Strictly below every host match: a route whose own hosts match takes the
            // request untagged, so the tagged lists are read last.
            let mut tagged = candidates.tagged.iter().take_while(|(r, _)| *r < first);
            if let Some(&(route, backend)) = tagged.find(|(r, _)| path_matches(*r)) {
                first = route;
                tagged_backend = Some(backend);
            }
        }
        (first < self.route_count).then_some(HostMatch {
            index: first,
            tagged_backend,
        })
    }
}

/// The first of `candidates` (ascending) below `bound` whose path matches, else `bound`.
fn first_below(candidates: &[usize], bound: usize, path_matches: impl Fn(usize) -> bool) -> usize {
    candidates
        .iter()
        .copied()
        .take_while(|&index| index < bound)
        .find(|&index| path_matches(index))
        .unwrap_or(bound)
}

/// Appends `route` unless it is already last (a route listing the same host twice).
fn push_once(candidates: &mut Vec<usize>, route: usize) {
    if candidates.last() != Some(&route) {
        candidates.push(route);
    }
}

/// A map keyed by bytes, compared ASCII case-insensitively, and looked up by a [`FoldedHash`]
/// the caller computed: the request's host is never copied or lower-cased.
///
/// The hash is fixed, not seeded: the keys come from the configuration, and a client's host
/// only probes, so it cannot lengthen a bucket. Std's SipHash would also hash every suffix
/// again from scratch, and seed itself through a host call on first use.
#[derive(Debug)]
struct FoldedMap<T> {
    /// By hash: the keys sharing it, nearly always one.
    buckets: HashMap<u64, Vec<Keyed<T>>, BuildHasherDefault<PrecomputedHash>>,
}

#[derive(Debug)]
struct Keyed<T> {
    /// Lower-case.
    key: Box<[u8]>,
    value: T,
}

impl<T> Default for FoldedMap<T> {
    fn default() -> Self {
        FoldedMap {
            buckets: HashMap::default(),
        }
    }
}

impl<T: Default> FoldedMap<T> {
    /// The value under `key`, inserted empty if absent.
    fn entry(&mut self, key: &str) -> &mut T {
        let key = key.to_ascii_lowercase().into_bytes();
        let bucket = self
            .buckets
            .entry(FoldedHash::of(&key).finish())
            .or_default();
        let at = match bucket.iter().position(|keyed| *keyed.key == *key) {
            Some(at) => at,
            None => {
                bucket.push(Keyed {
                    key: key.into_boxed_slice(),
                    value: T::default(),
                });
                bucket.len() - 1
            }
        };
        &mut bucket[at].value
    }
}

impl<T> FoldedMap<T> {
    /// The value under `key` (any case), whose hash is `hash`.
    fn get(&self, hash: FoldedHash, key: &[u8]) -> Option<&T> {
        self.buckets
            .get(&hash.finish())?
            .iter()
            .find(|keyed| keyed.key.eq_ignore_ascii_case(key))
            .map(|keyed| &keyed.value)
    }
}

/// FNV-1a over ASCII-lower-cased bytes, fed from the last byte to the first so that hashing a
/// host passes through the hash of each of its suffixes.
#[derive(Debug, Clone, Copy)]
struct FoldedHash(u64);

impl FoldedHash {
    const EMPTY: FoldedHash = FoldedHash(FNV1A64_EMPTY);

    /// The hash of `byte` followed by what was hashed so far.
    fn prepend(self, byte: u8) -> FoldedHash {
        FoldedHash(fnv1a64_step(self.0, byte.to_ascii_lowercase()))
    }

    fn of(bytes: &[u8]) -> FoldedHash {
        bytes
            .iter()
            .rev()
            .fold(FoldedHash::EMPTY, |hash, &byte| hash.prepend(byte))
    }

    /// FNV's low bits are weak and the map picks buckets with them: mix (murmur3's finalizer).
    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The hasher of [`FoldedMap`]'s `u64` keys, which are hashes already.
#[derive(Default)]
struct PrecomputedHash(u64);

impl Hasher for PrecomputedHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    // Only `u64` keys are hashed; any other input still gets a deterministic value.
    fn write(&mut self, bytes: &[u8]) {
        self.0 = bytes
            .iter()
            .fold(self.0, |h, &b| h.rotate_left(8) ^ u64::from(b));
    }
}
