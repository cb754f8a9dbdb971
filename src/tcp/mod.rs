//! The network filter's decisions, without the host: which `tcp_routes` entry takes a
//! connection (by its TLS SNI), which backend it gets (by weight, or by the client's IP address
//! with the monotone sticky rule of HTTP keys), and the bytes of the `set_envoy_filter_state`
//! call that hands the cluster to `tcp_proxy`.

pub mod connection;
pub mod filter_state;

use crate::config::TcpRoute;
use crate::random::Rng;
use crate::routing::sticky::sticky_backend;

/// Why a connection got its backend (the `reason` label of the connection counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpReason {
    Weight,
    Sticky,
}

impl TcpReason {
    /// Every reason, in the order counters are stored.
    pub const ALL: [TcpReason; 2] = [TcpReason::Weight, TcpReason::Sticky];

    pub fn index(self) -> usize {
        match self {
            TcpReason::Weight => 0,
            TcpReason::Sticky => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TcpReason::Weight => "weight",
            TcpReason::Sticky => "sticky",
        }
    }
}

/// The route and backend (indexes into the config) chosen for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpChoice {
    pub route: usize,
    pub backend: usize,
    pub reason: TcpReason,
}

/// The first route whose `sni_hosts` match `sni` (empty: no SNI, or plain TCP). A route without
/// `sni_hosts` takes every connection; a route with them never takes one without SNI.
pub fn match_route(routes: &[TcpRoute], sni: &[u8]) -> Option<usize> {
    routes.iter().position(|route| {
        route.sni_hosts.is_empty()
            || (!sni.is_empty() && route.sni_hosts.iter().any(|p| p.matches(sni)))
    })
}

/// The backend of `route` for a connection from `source` (Envoy's `source.address`, read only
/// when the route is sticky: `source_address` is called at most once), by the route's
/// configured weights.
pub fn choose_backend(
    route: &TcpRoute,
    source_address: impl FnOnce() -> Option<Vec<u8>>,
    rng: &mut Rng,
) -> (usize, TcpReason) {
    choose_backend_at(route, 0, false, source_address, rng)
}

/// As [`choose_backend`], by the weights in force: the rollout's at `step` (0: before
/// `start`), with the canary at 0 once the followed HTTP route is `aborted`. A rollout's tables
/// put the canary last, so a client address on the canary stays on it as steps raise its share.
pub fn choose_backend_at(
    route: &TcpRoute,
    step: usize,
    aborted: bool,
    source_address: impl FnOnce() -> Option<Vec<u8>>,
    rng: &mut Rng,
) -> (usize, TcpReason) {
    let schedule = route.rollout.as_ref().map(|r| &r.schedule);
    let table = match schedule {
        Some(schedule) => schedule.table(step, aborted),
        None => &route.split,
    };
    let backend = |position: usize| schedule.map_or(position, |s| s.backend_at(position));
    if route.sticky_source_address {
        if let Some(address) = source_address() {
            let ip = ip_of(&address);
            if !ip.is_empty() {
                let position = sticky_backend(ip, table.cumulative());
                return (backend(position), TcpReason::Sticky);
            }
        }
    }
    (backend(table.pick(rng)), TcpReason::Weight)
}

/// The IP address of Envoy's `source.address`, without the port: `10.0.0.1:5000` → `10.0.0.1`,
/// `[::1]:5000` → `::1`. An address without a port is returned whole (brackets removed), so
/// one client hashes to the same key however Envoy writes it.
pub fn ip_of(address: &[u8]) -> &[u8] {
    if let Some(rest) = address.strip_prefix(b"[") {
        return match rest.iter().position(|&b| b == b']') {
            Some(end) => &rest[..end],
            None => rest,
        };
    }
    let mut colons = address.iter().enumerate().filter(|(_, &b)| b == b':');
    match (colons.next(), colons.next()) {
        (Some((at, _)), None) => &address[..at],
        _ => address,
    }
}

#[cfg(test)]
mod tests;
