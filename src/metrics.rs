//! Metric names. Counters are defined once per configuration (in the adapter) from these names;
//! `;key=value` parts become Prometheus labels through the `stats_tags` in envoy/envoy.yaml.

use crate::compare::Part;
use crate::mirror::Skip;
use crate::routing::Reason;

/// Requests for which no route matched (the route header was removed).
pub const UNMATCHED: &str = "split_mirror_unmatched_total";

/// `split_mirror_requests_total;route=R;backend=C;reason=X`
pub fn request_counter(route: &str, backend: &str, reason: Reason) -> String {
    format!(
        "split_mirror_requests_total;route={route};backend={backend};reason={}",
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
    fn mirror_counter_names_route_mirror_and_outcome() {
        assert_eq!(
            mirror_counter("httpbin", "httpbin-shadow", MirrorOutcome::Mirrored),
            "split_mirror_mirror_total;route=httpbin;mirror=httpbin-shadow;outcome=mirrored"
        );
    }
}
