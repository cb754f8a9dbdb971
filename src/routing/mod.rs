//! Per request: which route matches, and which backend it goes to. Pure functions over the
//! compiled [`Config`]; the adapter feeds them header values and writes back the result.
//!
//! Decision order within a route: a tagged host, the tag header, overrides (first match),
//! the sticky key, then the weighted draw.

pub mod sticky;

/// Re-exported under its old path, which the adapter and callers outside the crate name.
pub use crate::keys;

use crate::config::{Config, Route};
use crate::keys::{cookie_value, KeySource};
use crate::random::Rng;
use crate::weights::WeightTable;
use sticky::sticky_backend;

/// Why a backend was chosen; counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The weighted random draw.
    Weight,
    /// An override header or cookie matched.
    Override,
    /// A tagged host (`<tag>-<host>`) or the tag header named a backend.
    Tag,
    /// The sticky key's hash.
    Sticky,
    /// A sticky key or tag was expected but missing or unknown: the weighted draw decided.
    Fallback,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Weight,
        Reason::Override,
        Reason::Tag,
        Reason::Sticky,
        Reason::Fallback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Weight => "weight",
            Reason::Override => "override",
            Reason::Tag => "tag",
            Reason::Sticky => "sticky",
            Reason::Fallback => "fallback",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Reason::Weight => 0,
            Reason::Override => 1,
            Reason::Tag => 2,
            Reason::Sticky => 3,
            Reason::Fallback => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub backend: usize,
    pub reason: Reason,
    /// A new sticky key to hand the client in a Set-Cookie (`sticky.set_cookie`).
    pub mint_cookie: Option<String>,
}

impl Decision {
    fn new(backend: usize, reason: Reason) -> Self {
        Decision {
            backend,
            reason,
            mint_cookie: None,
        }
    }
}

/// The request attributes routing looks at, as raw header bytes (they need not be UTF-8).
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestView<'a> {
    pub authority: &'a [u8],
    pub path: &'a [u8],
}

/// Request headers fetched on demand: only routes with overrides, tags or sticky keys ask.
pub trait RequestHeaders {
    /// The value of header `name` (lower-case).
    fn header(&mut self, name: &str) -> Option<Vec<u8>>;
}

/// A matched route, and the backend a tagged host named (`candidate-httpbin`).
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'c> {
    pub index: usize,
    pub route: &'c Route,
    pub tagged_backend: Option<usize>,
}

impl Config {
    /// The first route whose hosts (or tagged hosts) and path prefix match. The adapter may
    /// leave `authority` or `path` empty when [`Config::needs_authority`] or
    /// [`Config::needs_path`] say no route looks at them.
    pub fn match_route(&self, request: &RequestView) -> Option<RouteMatch<'_>> {
        let path_matches = |index: usize| {
            self.routes
                .get(index)
                .is_some_and(|route| route.matches_path(request.path))
        };
        let found = self.index.find(request.authority, path_matches)?;
        Some(RouteMatch {
            index: found.index,
            route: self.routes.get(found.index)?,
            tagged_backend: found.tagged_backend,
        })
    }
}

/// The weights weighted and sticky decisions draw from: the route's own, or those of a
/// rollout's step, whose entries are the backends in the rollout's order (canary last).
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    table: &'a WeightTable,
    /// `order[position]` = backend index; `None`: positions are backend indexes.
    order: Option<&'a [usize]>,
}

impl Split<'_> {
    fn backend_at(&self, position: usize) -> usize {
        match self.order {
            Some(order) => order.get(position).copied().unwrap_or(position),
            None => position,
        }
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        self.backend_at(self.table.pick(rng))
    }

    fn sticky(&self, key: &[u8]) -> usize {
        self.backend_at(sticky_backend(key, self.table.cumulative()))
    }
}

impl Route {
    /// The weights in force: for a rollout, those of `step` (0: before start) or, once
    /// aborted, the canary's weight at 0; otherwise the configured weights.
    pub fn split(&self, step: usize, aborted: bool) -> Split<'_> {
        match &self.rollout {
            Some(rollout) => Split {
                table: rollout.table(step, aborted),
                order: Some(&rollout.order),
            },
            None => Split {
                table: &self.split,
                order: None,
            },
        }
    }

    /// The default prefix `/` matches every request (Envoy would not route a path that does not
    /// start with `/` anyway), so the adapter need not fetch `:path` for such routes.
    fn matches_path(&self, path: &[u8]) -> bool {
        self.path_prefix == "/" || path.starts_with(self.path_prefix.as_bytes())
    }

    fn tag_backend(&self, tag: &[u8]) -> Option<usize> {
        self.tags
            .iter()
            .find(|(name, _)| name.as_bytes() == tag)
            .map(|&(_, backend)| backend)
    }

    /// Chooses the backend for one request with the configured weights.
    pub fn decide(
        &self,
        tagged_backend: Option<usize>,
        headers: &mut impl RequestHeaders,
        rng: &mut Rng,
    ) -> Decision {
        self.decide_in(self.split(0, false), tagged_backend, headers, rng)
    }

    /// Chooses the backend for one request; weighted and sticky decisions use `split`, tags and
    /// overrides reach any backend whatever the weights.
    pub fn decide_in(
        &self,
        split: Split<'_>,
        tagged_backend: Option<usize>,
        headers: &mut impl RequestHeaders,
        rng: &mut Rng,
    ) -> Decision {
        if let Some(backend) = tagged_backend {
            return Decision::new(backend, Reason::Tag);
        }
        let mut fell_back = false;
        if let Some(tag_header) = &self.tag_header {
            if let Some(tag) = headers.header(tag_header) {
                match self.tag_backend(&tag) {
                    Some(backend) => return Decision::new(backend, Reason::Tag),
                    None => fell_back = true,
                }
            }
        }
        for rule in &self.overrides {
            if lookup(&rule.source, headers).is_some_and(|value| rule.value.matches(&value)) {
                return Decision::new(rule.backend, Reason::Override);
            }
        }
        if let Some(sticky) = &self.sticky {
            match lookup(&sticky.source, headers).filter(|key| !key.is_empty()) {
                Some(key) => return Decision::new(split.sticky(&key), Reason::Sticky),
                None if sticky.set_cookie => {
                    let key = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
                    let backend = split.sticky(key.as_bytes());
                    return Decision {
                        backend,
                        reason: Reason::Sticky,
                        mint_cookie: Some(key),
                    };
                }
                None => fell_back = true,
            }
        }
        let reason = if fell_back {
            Reason::Fallback
        } else {
            Reason::Weight
        };
        Decision::new(split.pick(rng), reason)
    }
}

fn lookup(source: &KeySource, headers: &mut impl RequestHeaders) -> Option<Vec<u8>> {
    match source {
        KeySource::Header(name) => headers.header(name),
        KeySource::Cookie(name) => {
            let cookies = headers.header("cookie")?;
            cookie_value(&cookies, name).map(<[u8]>::to_vec)
        }
    }
}

#[cfg(test)]
mod match_route_tests;
#[cfg(test)]
mod tests;
