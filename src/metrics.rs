//! Metric names, and the table that defines each per-route counter on its first increment.
//! `;key=value` parts become Prometheus labels through the `stats_tags` in envoy/envoy.yaml.
//!
//! A route × backend × reason (or route × mirror × outcome) counter is defined with the host only
//! when it is first incremented, so a series that never counts anything costs neither the host's
//! stat storage nor its name: Envoy's own stats appear the same way. The two single metrics
//! (unmatched requests, the in-flight gauge) are defined with the configuration.

use crate::compare::Part;
use crate::mirror::Skip;
use crate::proxy::metric::LazyMetric;
use crate::rollout::guard::{AbortReason, StatusClass};
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

/// `split_mirror_compare_total;route=R;mirror=C;result=X`
pub fn compare_counter(route: &str, mirror: &str, result: &str) -> String {
    format!("split_mirror_compare_total;route={route};mirror={mirror};result={result}")
}

/// `split_mirror_compare_diff_total;route=R;mirror=C;part=P`
pub fn compare_diff_counter(route: &str, mirror: &str, part: Part) -> String {
    format!(
        "split_mirror_compare_diff_total;route={route};mirror={mirror};part={}",
        part.as_str()
    )
}

/// `split_mirror_compare_fields_total;route=R;mirror=C;field=F`. A JSON key may hold anything:
/// `;`, `=` and whitespace, which would break the name's labels, become `_`.
pub fn compare_field_counter(route: &str, mirror: &str, field: &str) -> String {
    let field: String = field
        .chars()
        .map(|c| {
            if c == ';' || c == '=' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("split_mirror_compare_fields_total;route={route};mirror={mirror};field={field}")
}

/// Distinct `field` labels kept per mirror; later fields count as `field="other"`.
pub const MAX_COMPARE_FIELDS: usize = 50;

/// A family of counters indexed `[route][cluster][kind]` (cluster: a route's backend or mirror;
/// kind: a [`Reason`] or [`MirrorOutcome`]), each defined on its first use. One flat table of
/// slots in one allocation: finding a counter is an index computation, and after its first use
/// it costs no allocation and no name.
#[derive(Debug)]
pub struct CounterTable<const KINDS: usize> {
    /// Route `r`'s slots are `slots[starts[r]..starts[r + 1]]`, `KINDS` per cluster.
    starts: Vec<usize>,
    slots: Vec<LazyMetric>,
}

impl<const KINDS: usize> CounterTable<KINDS> {
    /// A table for routes with `clusters[r]` clusters each, nothing defined yet.
    pub fn new(clusters: impl IntoIterator<Item = usize>) -> Self {
        let mut starts = vec![0];
        let mut end = 0;
        for count in clusters {
            end += count * KINDS;
            starts.push(end);
        }
        CounterTable {
            starts,
            slots: vec![LazyMetric::default(); end],
        }
    }

    /// The host's id for counter `[route][cluster][kind]`. On the counter's first use `define`
    /// builds its name and asks the host (`None`: refused); it is never called again for that
    /// counter. `None` for a refused counter or an index out of range.
    pub fn id(
        &self,
        route: usize,
        cluster: usize,
        kind: usize,
        define: impl FnOnce() -> Option<u32>,
    ) -> Option<u32> {
        self.slot(route, cluster, kind)?.id(define)
    }

    fn slot(&self, route: usize, cluster: usize, kind: usize) -> Option<&LazyMetric> {
        let (start, end) = (*self.starts.get(route)?, *self.starts.get(route + 1)?);
        if kind >= KINDS {
            return None;
        }
        let index = cluster.checked_mul(KINDS)?.checked_add(start + kind)?;
        if index >= end {
            return None;
        }
        self.slots.get(index)
    }
}

/// `split_mirror_responses_total;route=R;backend=C;class=5xx`: responses by status class, for
/// routes with a `rollout`.
pub fn responses_counter(route: &str, backend: &str, class: StatusClass) -> String {
    format!(
        "split_mirror_responses_total;route={route};backend={backend};class={}",
        class.as_str()
    )
}

/// `split_mirror_slow_responses_total;route=R;backend=C`: answers slower than the guard's
/// `max_latency_ms` (504 included), for routes whose guard has one.
pub fn slow_responses_counter(route: &str, backend: &str) -> String {
    format!("split_mirror_slow_responses_total;route={route};backend={backend}")
}

/// `split_mirror_rollout_aborts_total;route=R;reason=5xx`: aborts this proxy's workers
/// decided, by the test that fired (`5xx` or `latency`).
pub fn rollout_aborts_counter(route: &str, reason: AbortReason) -> String {
    format!(
        "split_mirror_rollout_aborts_total;route={route};reason={}",
        reason.as_str()
    )
}

/// Gauge `split_mirror_rollout_step;route=R`: the step in force (0 before start).
pub fn rollout_step_gauge(route: &str) -> String {
    format!("split_mirror_rollout_step;route={route}")
}

/// Gauge `split_mirror_rollout_canary_weight;route=R`: the canary's effective share in
/// hundredths of a percent.
pub fn rollout_canary_weight_gauge(route: &str) -> String {
    format!("split_mirror_rollout_canary_weight;route={route}")
}

/// Gauge `split_mirror_rollout_aborted;route=R`: 1 once the guard aborted the rollout here.
pub fn rollout_aborted_gauge(route: &str) -> String {
    format!("split_mirror_rollout_aborted;route={route}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_metrics_name_the_route() {
        assert_eq!(
            responses_counter("demo", "demo-canary", StatusClass::ServerError),
            "split_mirror_responses_total;route=demo;backend=demo-canary;class=5xx"
        );
        assert_eq!(
            rollout_step_gauge("demo"),
            "split_mirror_rollout_step;route=demo"
        );
        assert_eq!(
            rollout_canary_weight_gauge("demo"),
            "split_mirror_rollout_canary_weight;route=demo"
        );
        assert_eq!(
            rollout_aborted_gauge("demo"),
            "split_mirror_rollout_aborted;route=demo"
        );
    }

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
    fn compare_counters_keep_labels_parseable() {
        assert_eq!(
            compare_field_counter("r", "m", "/a;b=c d/*"),
            "split_mirror_compare_fields_total;route=r;mirror=m;field=/a_b_c_d/*"
        );
        assert_eq!(
            compare_diff_counter("r", "m", Part::Headers),
            "split_mirror_compare_diff_total;route=r;mirror=m;part=headers"
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

    /// A host double: hands out ids 0, 4, 8... (as Envoy does for counters) and records the names.
    struct Host {
        defined: Vec<String>,
    }

    impl Host {
        fn define(&mut self, name: String) -> Option<u32> {
            self.defined.push(name);
            Some(4 * (self.defined.len() as u32 - 1))
        }
    }

    #[test]
    fn counter_is_defined_on_first_use_only() {
        let table = CounterTable::<5>::new([2, 3]);
        let mut host = Host { defined: vec![] };
        let first = table.id(1, 2, 4, || host.define("r1/c2/k4".into()));
        assert_eq!(first, Some(0));
        for _ in 0..3 {
            let again = table.id(1, 2, 4, || panic!("defined twice"));
            assert_eq!(again, first);
        }
        assert_eq!(host.defined, ["r1/c2/k4"]);
    }

    #[test]
    fn unused_counters_are_never_defined() {
        let table = CounterTable::<5>::new([2; 1000]);
        let mut host = Host { defined: vec![] };
        table.id(999, 1, 0, || host.define("last".into()));
        assert_eq!(host.defined, ["last"]);
    }

    #[test]
    fn each_route_cluster_and_kind_is_its_own_counter() {
        let table = CounterTable::<3>::new([2, 1, 2]);
        let mut host = Host { defined: vec![] };
        let mut ids = vec![];
        for (route, clusters) in [2, 1, 2].into_iter().enumerate() {
            for cluster in 0..clusters {
                for kind in 0..3 {
                    let name = format!("{route}/{cluster}/{kind}");
                    ids.push(table.id(route, cluster, kind, || host.define(name)));
                }
            }
        }
        let expected: Vec<Option<u32>> = (0..15).map(|i| Some(4 * i)).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn refused_definition_is_a_no_op_counter_not_asked_again() {
        let table = CounterTable::<5>::new([1]);
        assert_eq!(table.id(0, 0, 0, || None), None);
        assert_eq!(table.id(0, 0, 0, || panic!("asked again")), None);
        // The other counters of the route are unaffected.
        assert_eq!(table.id(0, 0, 1, || Some(8)), Some(8));
    }

    #[test]
    fn out_of_range_indexes_define_nothing() {
        let table = CounterTable::<5>::new([2, 0, 1]);
        let never = || -> Option<u32> { panic!("defined out of range") };
        assert_eq!(table.id(0, 2, 0, never), None, "cluster past the route's");
        assert_eq!(table.id(1, 0, 0, never), None, "route without clusters");
        assert_eq!(table.id(3, 0, 0, never), None, "route past the config");
        assert_eq!(table.id(0, 0, 5, never), None, "kind past KINDS");
        assert_eq!(table.id(usize::MAX, 0, 0, never), None);
        assert_eq!(table.id(0, usize::MAX, 0, never), None);
        assert_eq!(table.id(2, usize::MAX / 5, 0, never), None);
    }
}
