#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::naming::{host_forms, Clusters, Destination};
use super::promote::{edit, Action};
use crate::rollout::time::parse_rfc3339;

fn destination(host: &str, subset: Option<&str>, port: Option<u16>) -> Destination {
    Destination {
        host: host.into(),
        subset: subset.map(Into::into),
        port,
        namespace: "shop".into(),
    }
}

#[test]
fn cluster_names_follow_istio_and_plain_conventions() {
    let short = destination("reviews", Some("v2"), Some(9080));
    assert_eq!(
        short.cluster(Clusters::Istio, None).as_deref(),
        Some("outbound|9080|v2|reviews.shop.svc.cluster.local")
    );
    assert_eq!(
        short.cluster(Clusters::Plain, None).as_deref(),
        Some("reviews-v2")
    );
    let fqdn = destination("httpbin.httpbin.svc.cluster.local", None, None);
    assert_eq!(
        fqdn.cluster(Clusters::Istio, None),
        None,
        "no port, no Istio name"
    );
    assert_eq!(
        fqdn.cluster(Clusters::Istio, Some(8000)).as_deref(),
        Some("outbound|8000||httpbin.httpbin.svc.cluster.local")
    );
    assert_eq!(
        fqdn.cluster(Clusters::Plain, None).as_deref(),
        Some("httpbin")
    );
    // A name with a dot is not a short name to Istio: it stays as written.
    let external = destination("api.example.com", None, Some(443));
    assert_eq!(
        external.cluster(Clusters::Istio, None).as_deref(),
        Some("outbound|443||api.example.com")
    );
    assert_eq!(
        external.cluster(Clusters::Plain, None).as_deref(),
        Some("api.example.com")
    );
}

#[test]
fn host_forms_of_a_service_name() {
    assert_eq!(
        host_forms("reviews", "shop").unwrap(),
        [
            "reviews",
            "reviews.shop",
            "reviews.shop.svc",
            "reviews.shop.svc.cluster.local"
        ]
    );
    assert_eq!(
        host_forms("reviews.example.com", "shop").unwrap(),
        ["reviews.example.com"]
    );
    assert_eq!(host_forms("*", "shop"), None);
}

const JSON: &str = r#"{
  "routes": [
    {"name": "other", "backends": [{"cluster": "a"}]},
    {
      "name": "web",
      "backends": [{"cluster": "stable", "weight": 100}, {"cluster": "canary", "weight": 0}],
      "rollout": {
        "canary": "canary",
        "start": "2026-12-01T10:00:00Z",
        "steps": [
          {"weight": 20},
          {"weight": 50, "hold_s": 60},
          {"weight": 100}
        ]
      }
    }
  ]
}
"#;

fn at(text: &str) -> i64 {
    parse_rfc3339(text).unwrap()
}

#[test]
fn promote_json_marks_the_paused_step_done_and_keeps_the_rest_byte_for_byte() {
    let now = at("2026-12-01T11:00:00.250Z");
    let edited = edit("c.json", JSON, "web", Action::Promote { full: false }, now).unwrap();
    let expected = JSON
        .replace("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z")
        .replace("{\"weight\": 20},\n          ", "");
    assert_eq!(edited.text, expected);
    assert!(
        edited.changes[0].contains("step 1 of 3 (20 %) marked done"),
        "{:?}",
        edited.changes
    );
    // Step 2 holds 60 s from the new start; promoted again within it, it is done too.
    let again = edit(
        "c.json",
        &edited.text,
        "web",
        Action::Promote { full: false },
        now + 1000,
    )
    .unwrap();
    assert!(
        again
            .text
            .contains("\"steps\": [\n          {\"weight\": 100}\n        ]"),
        "{}",
        again.text
    );
    let last = edit(
        "c.json",
        &again.text,
        "web",
        Action::Promote { full: false },
        now + 2000,
    );
    assert!(last
        .unwrap_err()
        .contains("already at its last step (100 %)"));
}

#[test]
fn promote_full_jumps_to_the_last_step_and_resume_keeps_the_step_in_force() {
    let now = at("2026-12-01T11:00:00Z");
    let full = edit("c.json", JSON, "web", Action::Promote { full: true }, now).unwrap();
    assert!(
        full.text
            .contains("\"steps\": [\n          {\"weight\": 100}"),
        "{}",
        full.text
    );
    let resumed = edit("c.json", JSON, "web", Action::Resume, now).unwrap();
    assert_eq!(
        resumed.text,
        JSON.replace("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z")
    );
    // Resuming at the very second of the start still changes it: the abort key must change.
    let same = edit(
        "c.json",
        JSON,
        "web",
        Action::Resume,
        at("2026-12-01T10:00:00Z"),
    )
    .unwrap();
    assert!(same.text.contains("2026-12-01T10:00:01Z"), "{}", same.text);
    let missing = edit("c.json", JSON, "other", Action::Resume, now).unwrap_err();
    assert!(
        missing.contains("route \"other\": rollout.steps: none"),
        "{missing}"
    );
}

const YAML: &str = "# the canary
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: split-mirror
spec:
  pluginName: split-mirror
  pluginConfig:
    routes:
    - name: web
      # stable first
      backends:
      - {cluster: stable, weight: 100}
      - {cluster: canary, weight: 0}
      rollout:
        canary: canary
        start: 2026-12-01T10:00:00Z   # set by import
        steps:
        # manual gate
        - weight: 20
        - weight: 50
          hold_s: 60
        - weight: 100
      mirrors:
      - cluster: shadow
";

#[test]
fn promote_yaml_edits_only_the_start_line_and_the_steps_done() {
    let now = at("2026-12-01T11:00:00Z");
    let edited = edit("p.yaml", YAML, "web", Action::Promote { full: false }, now).unwrap();
    let expected = YAML
        .replace(
            "        start: 2026-12-01T10:00:00Z   # set by import",
            "        start: \"2026-12-01T11:00:00Z\"",
        )
        // A comment before the first step stays where it is.
        .replace("        - weight: 20\n", "");
    assert_eq!(edited.text, expected);
    let full = edit("p.yaml", YAML, "web", Action::Promote { full: true }, now).unwrap();
    assert!(
        full.text.contains(
            "        steps:\n        # manual gate\n        - weight: 100\n      mirrors:"
        ),
        "{}",
        full.text
    );
}

#[test]
fn pause_durations_and_weights_sum_rules() {
    let import = |text: &str| {
        let options = super::Options {
            clusters: Some(Clusters::Plain),
            port: None,
            namespace: "default".into(),
            domain: "example.com".into(),
            start: "2026-12-01T10:00:00Z".into(),
        };
        super::import(&[("t.yaml".into(), text.into())], &options)
    };
    let rollout = |steps: &str| {
        format!(
            "kind: Rollout\napiVersion: argoproj.io/v1alpha1\nmetadata: {{name: r}}\nspec:\n  strategy:\n    canary:\n      canaryService: c\n      trafficRouting: {{istio: {{virtualService: {{name: vs}}}}}}\n      steps: {steps}\n---\nkind: VirtualService\napiVersion: networking.istio.io/v1\nmetadata: {{name: vs}}\nspec:\n  hosts: [h]\n  http:\n  - route:\n    - {{destination: {{host: s}}, weight: 100}}\n    - {{destination: {{host: c}}, weight: 0}}\n"
        )
    };
    let imported = import(&rollout(
        "[{setWeight: 10}, {pause: {duration: 2h}}, {setWeight: 30}, {pause: {duration: \"45\"}}]",
    ))
    .unwrap();
    let steps = serde_json::to_value(&imported.config.routes[0].rollout).unwrap();
    assert_eq!(
        steps["steps"],
        serde_json::json!([{"weight": 10, "hold_s": 7200}, {"weight": 30, "hold_s": 45}, {"weight": 100}])
    );
    let bad = import(&rollout("[{setWeight: 10}, {pause: {duration: 5d}}]")).unwrap_err();
    assert!(
        bad.contains("Rollout/r: spec.strategy.canary.steps[1].pause.duration"),
        "{bad}"
    );
    let down = import(&rollout("[{setWeight: 50}, {pause: {}}, {setWeight: 10}]")).unwrap_err();
    assert!(
        down.contains("steps[2].setWeight: below an earlier step"),
        "{down}"
    );
}

#[test]
fn a_rollout_on_a_route_left_to_the_virtual_service_says_why() {
    let options = super::Options {
        clusters: Some(Clusters::Plain),
        port: None,
        namespace: "default".into(),
        domain: "example.com".into(),
        start: "2026-12-01T10:00:00Z".into(),
    };
    let text = "kind: Rollout\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: r}\nspec:\n  strategy:\n    canary:\n      canaryService: c\n      trafficRouting: {istio: {virtualService: {name: vs}}}\n      steps: [{setWeight: 10}]\n---\nkind: VirtualService\napiVersion: networking.istio.io/v1\nmetadata: {name: vs}\nspec:\n  hosts: [h]\n  http:\n  - match: [{uri: {regex: \"^/a\"}}]\n    route:\n    - {destination: {host: s}, weight: 100}\n    - {destination: {host: c}, weight: 0}\n";
    let error = super::import(&[("t.yaml".into(), text.into())], &options).unwrap_err();
    assert!(
        error.starts_with("Rollout/r: spec.strategy.canary.trafficRouting.istio.virtualService:"),
        "{error}"
    );
    assert!(
        error.contains("spec.http[0].match[0].uri: an exact or regex path"),
        "{error}"
    );
}

#[test]
fn promote_moves_the_tls_route_on_the_same_clock_and_only_it() {
    let json = r#"{
  "routes": [{"name": "web", "backends": [{"cluster": "a"}, {"cluster": "b", "weight": 0}],
    "rollout": {"canary": "b", "start": "2026-12-01T10:00:00Z",
      "steps": [{"weight": 20}, {"weight": 100}]}}],
  "tcp_routes": [
    {"name": "web", "backends": [{"cluster": "ta"}, {"cluster": "tb", "weight": 0}],
      "rollout": {"canary": "tb", "start": "2026-12-01T10:00:00Z",
        "steps": [{"weight": 20}, {"weight": 100}]}},
    {"name": "other", "backends": [{"cluster": "ta"}, {"cluster": "tb", "weight": 0}],
      "rollout": {"canary": "tb", "start": "2026-12-01T10:00:00Z",
        "steps": [{"weight": 20}, {"weight": 100}]}}
  ]
}"#;
    let now = at("2026-12-01T11:00:00Z");
    let edited = edit("c.json", json, "web", Action::Promote { full: false }, now).unwrap();
    let value: serde_json::Value = serde_json::from_str(&edited.text).unwrap();
    for pointer in ["/routes/0/rollout", "/tcp_routes/0/rollout"] {
        let rollout = value.pointer(pointer).unwrap();
        assert_eq!(rollout["start"], "2026-12-01T11:00:00Z", "{pointer}");
        assert_eq!(
            rollout["steps"],
            serde_json::json!([{"weight": 100}]),
            "{pointer}"
        );
    }
    // Another TLS route keeps its own rollout.
    assert_eq!(
        value["tcp_routes"][1]["rollout"]["start"],
        "2026-12-01T10:00:00Z"
    );
    assert!(
        edited
            .changes
            .iter()
            .any(|c| c.contains("tcp_route \"web\": moved with it")),
        "{:?}",
        edited.changes
    );
}
