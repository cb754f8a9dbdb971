//! `split-mirror import`, `promote` and `resume`: every fixture of tests/import/ gives its
//! checked-in output; bad input is one line on stderr, exit 1, nothing on stdout; the output
//! passes `check -`; and in a real Envoy the imported configurations split, mirror and ramp as
//! their resources say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::backend::{Backend, Behavior};
use common::client::{count_by_backend, Request};
use common::envoy::{Envoy, FrontProxy};
use common::{assert_split, repo_root, scratch_dir};
use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn split_mirror(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_split-mirror"))
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Each directory of tests/import/: `input.yaml`, `args` (one line, optional) and the expected
/// `stdout`, `stderr` and `status` (absent: 0). `SPLIT_MIRROR_BLESS=1` rewrites the expected
/// files from what the command printed (review the diff before committing it).
#[test]
fn every_fixture_gives_its_checked_in_output() {
    let bless = std::env::var_os("SPLIT_MIRROR_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(repo_root().join("tests/import"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "fixtures missing: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let args = std::fs::read_to_string(case.join("args")).unwrap_or_default();
        let input = format!("tests/import/{name}/input.yaml");
        let mut argv = vec!["import"];
        argv.extend(args.split_whitespace());
        argv.push(&input);
        let output = split_mirror(&argv, None);
        let status = output.status.code().unwrap_or(-1).to_string();
        let got = [
            ("stdout", text(&output.stdout)),
            ("stderr", text(&output.stderr)),
            ("status", format!("{status}\n")),
        ];
        for (file, got) in got {
            let path = case.join(file);
            if bless {
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if expected != got {
                failures.push(format!(
                    "{name}/{file}:\n--- expected\n{expected}--- got\n{got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The bad inputs of the issue: one line naming the resource and the field, exit 1, stdout
/// empty.
#[test]
fn bad_input_is_one_line_exit_1_and_nothing_on_stdout() {
    let expectations = [
        ("bad-unknown-kind", "TrafficRoute/web: kind: unknown kind"),
        ("bad-yaml-syntax", "invalid YAML: did not find expected key at line 10 column 4"),
        ("bad-weights-90", "VirtualService/web: spec.http[0].route: the weights sum to 90; Istio requires"),
        ("bad-rollout-without-vs", "Rollout/web: spec.strategy.canary.trafficRouting.istio.virtualService.name: VirtualService web-vsvc is not in the input"),
        ("bad-no-port", "VirtualService/web: spec.http[0].route[1].destination.port: no port for web"),
        ("bad-knative-sum", "Service/web: spec.traffic: the percents sum to 90; Knative requires"),
        ("bad-smi-matches", "TrafficSplit/web: spec.matches:"),
    ];
    for (case, message) in expectations {
        let args = std::fs::read_to_string(repo_root().join(format!("tests/import/{case}/args")))
            .unwrap_or_default();
        let input = format!("tests/import/{case}/input.yaml");
        let mut argv = vec!["import"];
        argv.extend(args.split_whitespace());
        argv.push(&input);
        let output = split_mirror(&argv, None);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{case}: stdout {}",
            text(&output.stdout)
        );
        assert_eq!(stderr.lines().count(), 1, "{case}: {stderr}");
        assert!(stderr.contains(message), "{case}: {stderr}");
    }
}

/// The documented pipeline: `import X | check -`, for JSON and for the WasmPlugin YAML; and
/// `-` is stdin for `import` too.
#[test]
fn import_output_passes_check_from_stdin() {
    for (args, routes) in [
        (vec!["import", "tests/import/istio-weights/input.yaml"], 2),
        (
            vec![
                "import",
                "--wasmplugin",
                "p",
                "tests/import/istio-weights/input.yaml",
            ],
            2,
        ),
        (
            vec![
                "import",
                "--start",
                "2026-12-01T10:00:00Z",
                "tests/import/argo-steps/input.yaml",
            ],
            2,
        ),
    ] {
        let imported = split_mirror(&args, None);
        assert!(imported.status.success(), "{}", text(&imported.stderr));
        let checked = split_mirror(&["check", "-"], Some(&text(&imported.stdout)));
        let report = text(&checked.stdout);
        assert!(checked.status.success(), "{args:?}: {report}");
        assert!(!report.contains("invalid"), "{args:?}: {report}");
        // `route "` also counts each `tcp_route "`.
        assert!(
            report.matches("route \"").count() >= routes,
            "{args:?}: {report}"
        );
    }
    let input =
        std::fs::read_to_string(repo_root().join("tests/import/smi-canary/input.yaml")).unwrap();
    let from_stdin = split_mirror(&["import", "-"], Some(&input));
    let from_file = split_mirror(&["import", "tests/import/smi-canary/input.yaml"], None);
    assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));
    assert_eq!(from_stdin.stdout, from_file.stdout);
    // And `check -` refuses what the filter refuses, naming stdin.
    let refused = split_mirror(&["check", "-"], Some(r#"{"routes": []}"#));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stdout).starts_with("-: invalid configuration"),
        "{}",
        text(&refused.stdout)
    );
}

/// `promote` and `resume` on the WasmPlugin YAML `import --wasmplugin` writes: only the `start`
/// line and the steps done change, every other line stays, and `check` accepts the result.
#[test]
fn promote_and_resume_edit_a_wasmplugin_in_place() {
    let dir = scratch_dir("import-promote-yaml");
    let file = dir.join("split.yaml");
    let original =
        std::fs::read_to_string(repo_root().join("tests/import/argo-wasmplugin/stdout")).unwrap();
    std::fs::write(&file, &original).unwrap();
    let path = file.to_str().unwrap();
    let route = "rollouts-demo-vsvc";
    let run = |args: &[&str]| {
        let output = split_mirror(args, None);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    };
    // Step 1 (20 %, pause {}) holds from 10:00: promoted at 10:20, step 2 (40 %) begins.
    let said = run(&[
        "promote",
        path,
        "--route",
        route,
        "--now",
        "2026-12-01T10:20:00Z",
    ]);
    assert!(said.contains("step 1 of 5 (20 %) marked done"), "{said}");
    let promoted = std::fs::read_to_string(&file).unwrap();
    // The HTTP plugin's route and the TLS plugin's route of the same name (same start and
    // steps: the Rollout's tlsRoutes) move together.
    let expected = original
        .replace(
            "start: \"2026-12-01T10:00:00Z\"",
            "start: \"2026-12-01T10:20:00Z\"",
        )
        .replacen("        - weight: 20\n", "", 2);
    assert_eq!(promoted, expected);
    // Resume: a new start, the same steps.
    let said = run(&[
        "resume",
        path,
        "--route",
        route,
        "--now",
        "2026-12-01T10:30:00Z",
    ]);
    assert!(said.contains("new abort key"), "{said}");
    let resumed = std::fs::read_to_string(&file).unwrap();
    assert_eq!(resumed, promoted.replace("10:20:00Z", "10:30:00Z"));
    // --full: the last step only.
    run(&[
        "promote",
        path,
        "--route",
        route,
        "--full",
        "--now",
        "2026-12-01T10:31:00Z",
    ]);
    let full = std::fs::read_to_string(&file).unwrap();
    assert!(
        full.contains("        steps:\n        - weight: 100\n"),
        "{full}"
    );
    let checked = run(&["check", path]);
    assert!(checked.contains("step 1: 100 %"), "{checked}");
    // Nothing to promote at the last step: exit 1, the file untouched.
    let refused = split_mirror(
        &[
            "promote",
            path,
            "--route",
            route,
            "--now",
            "2026-12-01T10:32:00Z",
        ],
        None,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("already at its last step"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), full);
}

fn imported_json(args: &[&str]) -> Value {
    let output = split_mirror(args, None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// SMI 50/50 in a real Envoy: 50/50 within ±0.05 over 2,000 requests (4.5 σ).
#[test]
fn smi_fifty_fifty_splits_fifty_fifty() {
    let config = imported_json(&["import", "tests/import/smi-canary/input.yaml"]);
    let [v1, v2] = Backend::start_each(["httpbin-v1", "httpbin-v2"]);
    let envoy =
        FrontProxy::new(&config, &[("httpbin-v1", v1.port), ("httpbin-v2", v2.port)]).start();
    let counts = count_by_backend(envoy.port, &Request::get("/").host("httpbin"), 2_000);
    assert_split("httpbin-v1", &counts, "httpbin-v1", 0.5);
    assert_split("httpbin-v2", &counts, "httpbin-v2", 0.5);
    eprintln!("SMI 50/50 over 2000 requests: {counts:?}");
}

/// Istio's mirroring task imported: v1 answers everything, v2 receives a copy of each request
/// with the `-shadow` host, under Istio's cluster names.
#[test]
fn istio_mirror_sends_every_request_to_v2_with_the_shadow_host() {
    let config = imported_json(&[
        "import",
        "--port",
        "8000",
        "tests/import/istio-mirror/input.yaml",
    ]);
    let v1_cluster = "outbound|8000|v1|httpbin.default.svc.cluster.local";
    let v2_cluster = "outbound|8000|v2|httpbin.default.svc.cluster.local";
    assert_eq!(config["routes"][0]["mirrors"][0]["cluster"], v2_cluster);
    let [v1, v2] = Backend::start_each(["v1", "v2"]);
    let envoy = FrontProxy::new(&config, &[(v1_cluster, v1.port), (v2_cluster, v2.port)]).start();
    let counts = count_by_backend(envoy.port, &Request::get("/get").host("httpbin"), 100);
    assert_eq!(counts.get("v1"), Some(&100), "{counts:?}");
    assert_eq!(v2.wait_for(100, Duration::from_secs(10)), 100);
    for copy in v2.requests() {
        assert_eq!(
            copy.header(":authority").or(copy.header("host")).as_deref(),
            Some("httpbin-shadow")
        );
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sleep_until(at_ms: i64) {
    let wait = at_ms - now_ms();
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
}

fn rfc3339(ms: i64) -> String {
    split_mirror::rollout::time::format_rfc3339(ms)
}

fn four_sigma(p: f64, n: usize) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt()
}

/// An Argo Rollout with its VirtualService (host-level split, plain cluster names).
fn rollout_input(steps: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: demo}}
spec:
  strategy:
    canary:
      canaryService: demo-canary
      stableService: demo-stable
      trafficRouting:
        istio:
          virtualService: {{name: demo}}
      steps: {steps}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: demo}}
spec:
  hosts: [demo]
  http:
  - route:
    - destination: {{host: demo-stable}}
      weight: 100
    - destination: {{host: demo-canary}}
      weight: 0
"
    )
}

/// Imports `input` into `dir/config.json` (as the command prints it) and returns the JSON.
fn import_to_file(dir: &Path, input: &str, start_ms: i64) -> Value {
    let input_path = dir.join("rollout.yaml");
    std::fs::write(&input_path, input).unwrap();
    let start = rfc3339(start_ms);
    let output = split_mirror(
        &[
            "import",
            "--clusters",
            "plain",
            "--start",
            &start,
            input_path.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    std::fs::write(dir.join("config.json"), &output.stdout).unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

fn canary_share(envoy: &Envoy, until_ms: i64, max: usize) -> (usize, usize) {
    let (mut canary, mut total) = (0, 0);
    let request = Request::get("/").host("demo");
    while now_ms() < until_ms && total < max {
        let served = request.send(envoy.port).served_by();
        if now_ms() >= until_ms {
            break;
        }
        total += 1;
        canary += usize::from(served == "demo-canary");
    }
    (canary, total)
}

fn gauge(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(&format!("wasmcustom.{name};route=demo"))
}

/// The imported Rollout ramps by the clock: 0 before its start, 20 % for 4 s, then 50 % held
/// (`pause: {}`); `promote` on the file moves it to the next step (100 %) at once.
#[test]
fn argo_rollout_ramps_by_the_clock_and_promote_advances_a_paused_step() {
    let dir = scratch_dir("import-argo");
    let start_ms = now_ms() + 5000;
    let steps =
        "[{setWeight: 20}, {pause: {duration: 4}}, {setWeight: 50}, {pause: {}}, {setWeight: 100}]";
    let config = import_to_file(&dir, &rollout_input(steps), start_ms);
    assert_eq!(
        config["routes"][0]["rollout"]["steps"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{config}"
    );
    let [stable, canary] = Backend::start_each(["demo-stable", "demo-canary"]);
    let clusters = [("demo-stable", stable.port), ("demo-canary", canary.port)];
    let envoy = FrontProxy::new(&config, &clusters).dynamic().start();

    let (before, before_total) = canary_share(&envoy, start_ms - 300, 200);
    assert_eq!(
        before, 0,
        "before the start the canary has its configured weight 0"
    );
    sleep_until(start_ms + 300);
    let (first, first_total) = canary_share(&envoy, start_ms + 3700, 2000);
    let observed = first as f64 / first_total as f64;
    assert!(
        first_total >= 150 && (observed - 0.2).abs() <= four_sigma(0.2, first_total),
        "step 1 (20 %): {first} of {first_total}"
    );
    sleep_until(start_ms + 4300);
    let (second, second_total) = canary_share(&envoy, start_ms + 7000, 800);
    let observed = second as f64 / second_total as f64;
    assert!(
        second_total >= 150 && (observed - 0.5).abs() <= four_sigma(0.5, second_total),
        "step 2 (50 %): {second} of {second_total}"
    );
    sleep_until(start_ms + 7000);
    assert_eq!(
        gauge(&envoy, "split_mirror_rollout_step"),
        2,
        "the paused step holds"
    );

    let file = dir.join("config.json");
    let promoted = split_mirror(
        &["promote", file.to_str().unwrap(), "--route", "demo"],
        None,
    );
    let said = text(&promoted.stdout);
    assert!(
        promoted.status.success(),
        "{said}{}",
        text(&promoted.stderr)
    );
    assert!(said.contains("step 2 of 3 (50 %) marked done"), "{said}");
    let edited: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        edited["routes"][0]["rollout"]["steps"],
        serde_json::json!([{"weight": 100}])
    );
    assert!(envoy.update_filter_config(&FrontProxy::new(&edited, &clusters).dynamic()));
    let (all, total) = canary_share(&envoy, now_ms() + 10_000, 100);
    assert_eq!(
        (all, total),
        (100, 100),
        "after promote the canary takes everything"
    );
    assert_eq!(gauge(&envoy, "split_mirror_rollout_canary_weight"), 10_000);
    eprintln!(
        "before start: 0 of {before_total}; step 1: {first} of {first_total}; step 2: {second} of {second_total}"
    );
}

/// `resume` ends an abort: the guard aborts a canary failing under /broken; `resume` writes a
/// new start (a new abort key) and the canary takes its share again.
#[test]
fn argo_resume_clears_an_abort() {
    let dir = scratch_dir("import-resume");
    let mut config = import_to_file(
        &dir,
        &rollout_input("[{setWeight: 50}, {pause: {}}]"),
        now_ms() - 10_000,
    );
    config["routes"][0]["rollout"]["guard"] =
        serde_json::json!({"max_error_rate": 0.05, "min_requests": 20, "window_s": 30});
    let file = dir.join("config.json");
    std::fs::write(&file, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let stable = Backend::start("demo-stable");
    let canary = Backend::start_with("demo-canary", Behavior::failing_under("/broken"));
    let clusters = [("demo-stable", stable.port), ("demo-canary", canary.port)];
    let envoy = FrontProxy::new(&config, &clusters).dynamic().start();
    let broken = Request::get("/broken").host("demo");
    for _ in 0..300 {
        broken.send(envoy.port);
        if gauge(&envoy, "split_mirror_rollout_aborted") == 1 {
            break;
        }
    }
    assert!(envoy.wait_for_log("rollout aborted"), "no abort");
    let before = canary.count();
    let (after_abort, _) = canary_share(&envoy, now_ms() + 10_000, 200);
    assert_eq!(
        after_abort, 0,
        "aborted: no weighted request reaches the canary"
    );

    let resumed = split_mirror(&["resume", file.to_str().unwrap(), "--route", "demo"], None);
    let said = text(&resumed.stdout);
    assert!(resumed.status.success(), "{said}{}", text(&resumed.stderr));
    assert!(said.contains("start "), "{said}");
    let edited: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_ne!(
        edited["routes"][0]["rollout"]["start"],
        config["routes"][0]["rollout"]["start"]
    );
    assert_eq!(
        edited["routes"][0]["rollout"]["steps"],
        config["routes"][0]["rollout"]["steps"]
    );
    assert!(envoy.update_filter_config(&FrontProxy::new(&edited, &clusters).dynamic()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while gauge(&envoy, "split_mirror_rollout_aborted") != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (resumed_share, total) = canary_share(&envoy, now_ms() + 10_000, 400);
    let observed = resumed_share as f64 / total as f64;
    assert!(
        (observed - 0.5).abs() <= four_sigma(0.5, total),
        "after resume: canary {resumed_share} of {total}"
    );
    assert!(canary.count() > before);
    assert_eq!(gauge(&envoy, "split_mirror_rollout_aborted"), 0);
}
