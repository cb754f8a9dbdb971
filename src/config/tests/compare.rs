//! A mirror's `compare`: what compiles, and the three combinations refused with their messages.

use super::*;
use crate::compare::{BodyMode, DEFAULT_COMPARE_BODY_BYTES};

fn compared(compare: serde_json::Value) -> serde_json::Value {
    one_route(json!({"name": "r", "backends": [{"cluster": "v1"}],
                     "mirrors": [{"cluster": "v2", "compare": compare}]}))
}

#[test]
fn compare_compiles_with_its_defaults_and_lower_cased_headers() {
    let config = parse(compared(json!({}))).unwrap();
    let compare = config.routes[0].mirrors[0].compare.as_ref().unwrap();
    assert_eq!(compare.body, BodyMode::None);
    assert!(compare.headers.is_empty() && compare.ignore.is_empty());
    assert_eq!(compare.max_body_bytes, DEFAULT_COMPARE_BODY_BYTES);
    assert_eq!(compare.baseline, None);

    let config = parse(compared(
        json!({"headers": ["Content-Type"], "body": "json",
        "ignore": ["/id"], "baseline": "v1-baseline"}),
    ))
    .unwrap();
    let compare = config.routes[0].mirrors[0].compare.as_ref().unwrap();
    assert_eq!(compare.headers, ["content-type"]);
    assert_eq!(compare.body, BodyMode::Json);
    assert_eq!(compare.ignore.len(), 1);
    assert_eq!(compare.baseline.as_deref(), Some("v1-baseline"));
}

#[test]
fn compare_is_refused_on_a_mirror_envoy_sends() {
    let message = error_of(one_route(
        json!({"name": "r", "backends": [{"cluster": "v1"}],
        "mirrors": [{"cluster": "v2", "cluster_header": "x-mirror", "compare": {}}]}),
    ));
    assert_eq!(
        message,
        "route \"r\": mirrors[0].compare: not used with `cluster_header`: only a copy the filter \
         sends returns its answer to the filter"
    );
}

#[test]
fn ignore_needs_a_json_body_comparison() {
    for body in [json!(null), json!("none"), json!("exact")] {
        let mut compare = json!({"ignore": ["/id"]});
        if !body.is_null() {
            compare["body"] = body.clone();
        }
        assert_eq!(
            error_of(compared(compare)),
            "route \"r\": mirrors[0].compare.ignore: only used with `\"body\": \"json\"`",
            "body {body}"
        );
    }
}

#[test]
fn baseline_cannot_be_the_mirrors_own_cluster() {
    assert_eq!(
        error_of(compared(json!({"baseline": "v2"}))),
        "route \"r\": mirrors[0].compare.baseline: is the mirror's own cluster: the baseline \
         runs the primary's version"
    );
}
