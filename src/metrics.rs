//! Metric names. Counters are defined once per configuration (in the adapter) from these names;
//! `;key=value` parts become Prometheus labels through the `stats_tags` in envoy/envoy.yaml.

use crate::mirror::Skip;
use crate::routing::Reason;
use crate::tcp::TcpReason;

/// Requests for which no route matched (the route header was removed).
pub const UNMATCHED: &str = "split_mirror_unmatched_total";

/// `split_mirror_requests_total;route=R;backend=C;reason=X`
pub fn request_counter(route: &str, backend: &str, reason: Reason) -> String {
    format!(
        "split_mirror_requests_total;route={route};backend={backend};reason={}",
        reason.as_str()
    )
}

/// Connections no `tcp_routes` entry matched (they keep `tcp_proxy`'s own cluster).
pub const TCP_UNMATCHED: &str = "split_mirror_tcp_unmatched_total";

/// `split_mirror_tcp_connections_total;route=R;backend=C;reason=X`
pub fn tcp_connection_counter(route: &str, backend: &str, reason: TcpReason) -> String {
    format!(
        "split_mirror_tcp_connections_total;route={route};backend={backend};reason={}",
        reason.as_str()
    )
}

/// Gauge of shadows dispatched and not yet finished (answered, or past their timeout).
pub const SHADOWS_IN_FLIGHT: &str = "split_mirror_shadows_in_flight";

/// What happened to one request for one mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorOutcome {
    Mirrored,
    Skipped(Skip),
    DispatchFailed,
}

impl MirrorOutcome {
    /// Every outcome, in the order counters are stored.
    pub const ALL: [MirrorOutcome; 6] = [
        MirrorOutcome::Mirrored,
        MirrorOutcome::Skipped(Skip::Sampling),
        MirrorOutcome::Skipped(Skip::Method),
        MirrorOutcome::Skipped(Skip::BodyTooLarge),
        MirrorOutcome::Skipped(Skip::InFlightCap),
        MirrorOutcome::DispatchFailed,
    ];

    pub fn index(self) -> usize {
        match self {
            MirrorOutcome::Mirrored => 0,
            MirrorOutcome::Skipped(Skip::Sampling) => 1,
            MirrorOutcome::Skipped(Skip::Method) => 2,
            MirrorOutcome::Skipped(Skip::BodyTooLarge) => 3,
            MirrorOutcome::Skipped(Skip::InFlightCap) => 4,
            MirrorOutcome::DispatchFailed => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MirrorOutcome::Mirrored => "mirrored",
            MirrorOutcome::Skipped(Skip::Sampling) => "skipped_sampling",
            MirrorOutcome::Skipped(Skip::Method) => "skipped_method",
            MirrorOutcome::Skipped(Skip::BodyTooLarge) => "skipped_body_too_large",
            MirrorOutcome::Skipped(Skip::InFlightCap) => "skipped_in_flight_cap",
            MirrorOutcome::DispatchFailed => "dispatch_failed",
        }
    }
}

/// `split_mirror_mirror_total;route=R;mirror=C;outcome=O`
pub fn mirror_counter(route: &str, mirror: &str, outcome: MirrorOutcome) -> String {
    format!(
        "split_mirror_mirror_total;route={route};mirror={mirror};outcome={}",
        outcome.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_indexes_follow_all() {
        for (i, outcome) in MirrorOutcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i);
        }
    }

    #[test]
    fn request_counter_names_route_backend_and_reason() {
        assert_eq!(
            request_counter("httpbin", "httpbin-v2", Reason::Sticky),
            "split_mirror_requests_total;route=httpbin;backend=httpbin-v2;reason=sticky"
        );
    }

    #[test]
    fn tcp_connection_counter_names_route_backend_and_reason() {
        assert_eq!(
            tcp_connection_counter("tls", "canary", TcpReason::Sticky),
            "split_mirror_tcp_connections_total;route=tls;backend=canary;reason=sticky"
        );
    }

    #[test]
    fn mirror_counter_names_route_mirror_and_outcome() {
        assert_eq!(
            mirror_counter("httpbin", "httpbin-shadow", MirrorOutcome::Mirrored),
            "split_mirror_mirror_total;route=httpbin;mirror=httpbin-shadow;outcome=mirrored"
        );
    }
}
