use super::pending::{Outcome, Pending, Role, Side};
use super::*;

fn compare(body: BodyMode, ignore: &[&str]) -> Compare {
    Compare {
        headers: vec!["content-type".into()],
        body,
        ignore: ignore.iter().map(|p| Pointer::parse(p).unwrap()).collect(),
        max_body_bytes: DEFAULT_COMPARE_BODY_BYTES,
        baseline: None,
    }
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        grpc_status: None,
        headers: vec![Some("application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn places(found: &[Difference]) -> Vec<String> {
    found.iter().map(|d| d.place.to_string()).collect()
}

#[test]
fn identical_answers_are_the_same() {
    let c = compare(BodyMode::Json, &[]);
    let a = answer(200, r#"{"a": 1, "b": [1, 2]}"#);
    assert_eq!(judge(&c, &a, &a.clone(), None), Verdict::Same);
}

#[test]
fn status_and_listed_headers_are_compared() {
    let c = compare(BodyMode::None, &[]);
    let mut other = answer(500, "x");
    other.headers[0] = Some("text/plain".into());
    let found = differences(&c, &answer(200, "y"), &other);
    assert_eq!(places(&found), ["status", "header content-type"]);
    assert_eq!(found[0].primary, "200");
    assert_eq!(found[0].other, "500");
}

#[test]
fn grpc_status_is_part_of_the_status() {
    let c = compare(BodyMode::None, &[]);
    let mut ok = answer(200, "");
    ok.grpc_status = Some("0".into());
    let mut failed = ok.clone();
    failed.grpc_status = Some("14".into());
    let found = differences(&c, &ok, &failed);
    assert_eq!(places(&found), ["status"]);
    assert_eq!(found[0].other, "200 grpc-status 14");
}

#[test]
fn json_key_order_and_number_forms_do_not_matter() {
    let c = compare(BodyMode::Json, &[]);
    let a = answer(200, r#"{"a": 1, "b": {"x": 2.0, "y": [1, 2]}}"#);
    let b = answer(200, r#"{"b": {"y": [1.0, 2], "x": 2}, "a": 1.0}"#);
    assert_eq!(judge(&c, &a, &b, None), Verdict::Same);
    let c = compare(BodyMode::Exact, &[]);
    assert_eq!(places(&differences(&c, &a, &b)), ["body"]);
}

#[test]
fn json_differences_name_pointers_and_fields() {
    let c = compare(BodyMode::Json, &[]);
    let a = answer(
        200,
        r#"{"price": 10, "items": [{"id": 1}, {"id": 2}], "a/b": 1, "t~": 1}"#,
    );
    let b = answer(
        200,
        r#"{"price": 11, "items": [{"id": 1}, {"id": 3}, {"id": 4}], "a/b": 2, "t~": 2}"#,
    );
    let found = differences(&c, &a, &b);
    assert_eq!(
        places(&found),
        ["/a~1b", "/items/1/id", "/items/2", "/price", "/t~0"]
    );
    let fields: Vec<_> = found.iter().map(|d| d.field.clone().unwrap()).collect();
    assert_eq!(
        fields,
        ["/a~1b", "/items/*/id", "/items/*", "/price", "/t~0"]
    );
    assert_eq!(found[2].primary, "(absent)");
    assert_eq!(found[2].other, r#"{"id":4}"#);
}

#[test]
fn ignored_pointers_and_wildcards_are_removed_from_both_sides() {
    let c = compare(BodyMode::Json, &["/ts", "/items/*/id", "/nested/*/x"]);
    let a = answer(
        200,
        r#"{"ts": 1, "items": [{"id": 1, "v": 1}, {"id": 2, "v": 2}], "nested": {"p": {"x": 1}, "q": {"x": 2, "y": 3}}}"#,
    );
    let b = answer(
        200,
        r#"{"ts": 2, "items": [{"id": 7, "v": 1}, {"id": 8, "v": 2}], "nested": {"p": {"x": 5}, "q": {"x": 6, "y": 3}}}"#,
    );
    assert_eq!(judge(&c, &a, &b, None), Verdict::Same);
    let b = answer(
        200,
        r#"{"ts": 2, "items": [{"id": 7, "v": 1}, {"id": 8, "v": 9}], "nested": {}}"#,
    );
    assert_eq!(
        places(&differences(&c, &a, &b)),
        ["/items/1/v", "/nested/p", "/nested/q"]
    );
}

#[test]
fn non_json_bodies_are_compared_exactly_in_json_mode() {
    let c = compare(BodyMode::Json, &[]);
    assert_eq!(
        judge(&c, &answer(200, "plain"), &answer(200, "plain"), None),
        Verdict::Same
    );
    let found = differences(&c, &answer(200, "plain"), &answer(200, "{}"));
    assert_eq!(places(&found), ["body"]);
}

#[test]
fn pointers_follow_rfc_6901() {
    assert!(Pointer::parse("").is_ok());
    assert!(Pointer::parse("a")
        .unwrap_err()
        .contains("starting with `/`"));
    assert!(Pointer::parse("/a~2")
        .unwrap_err()
        .contains("`~` must be followed"));
    let c = compare(BodyMode::Json, &["/a~1b", "/t~0"]);
    let a = answer(200, r#"{"a/b": 1, "t~": 1, "k": [[1, 2], [3]]}"#);
    let b = answer(200, r#"{"a/b": 2, "t~": 2, "k": [[1, 5], [3, 4]]}"#);
    assert_eq!(places(&differences(&c, &a, &b)), ["/k/0/1", "/k/1/1"]);
}

#[test]
fn differences_the_baseline_shares_are_noise() {
    let c = compare(BodyMode::Json, &[]);
    let primary = answer(200, r#"{"request_id": "a", "price": 10}"#);
    let baseline = answer(200, r#"{"request_id": "b", "price": 10}"#);
    let noisy = answer(200, r#"{"request_id": "c", "price": 10}"#);
    assert_eq!(judge(&c, &primary, &noisy, Some(&baseline)), Verdict::Noise);
    let regressed = answer(200, r#"{"request_id": "c", "price": 11}"#);
    let Verdict::Differ(found) = judge(&c, &primary, &regressed, Some(&baseline)) else {
        panic!("expected differ");
    };
    assert_eq!(places(&found), ["/price"]);
    assert_eq!(
        judge(&c, &primary, &regressed, None).clone(),
        judge(&c, &primary, &regressed, None)
    );
}

#[test]
fn logged_values_are_cut_at_64_bytes_on_a_character_boundary() {
    assert_eq!(shown(b"short"), "short");
    let long = "é".repeat(40);
    let cut = shown(long.as_bytes());
    assert!(cut.ends_with("..."));
    assert_eq!(cut.len(), 64 + 3);
}

#[test]
fn pending_comparisons_complete_in_any_order() {
    let c = compare(BodyMode::None, &[]);
    let mut pending = Pending::new(2);
    let id = pending.open(0, 1, "GET /".into(), true, 1000).unwrap();
    pending.dispatched(7, id, Role::Candidate);
    pending.dispatched(8, id, Role::Baseline);
    assert!(pending
        .answered(7, Side::Answered(answer(200, "")))
        .is_none());
    assert!(pending
        .primary(id, Side::Answered(answer(200, "")))
        .is_none());
    let ready = pending
        .answered(8, Side::Answered(answer(200, "")))
        .unwrap();
    assert_eq!((ready.route, ready.mirror), (0, 1));
    assert_eq!(ready.outcome(&c), Outcome::Judged(Verdict::Same));
    assert!(pending.is_empty());
    assert!(!pending.is_compared(7));
}

#[test]
fn pending_comparisons_are_capped_and_expire() {
    let c = compare(BodyMode::None, &[]);
    let mut pending = Pending::new(2);
    let first = pending.open(0, 0, "GET /".into(), false, 100).unwrap();
    let second = pending.open(0, 0, "GET /".into(), false, 200).unwrap();
    assert_eq!(pending.open(0, 0, "GET /".into(), false, 300), None);
    pending.dispatched(1, first, Role::Candidate);
    pending.primary(second, Side::Answered(answer(200, "")));
    let late = pending.expire(150);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].outcome(&c), Outcome::PrimaryIncomplete);
    assert!(!pending.is_compared(1));
    let late = pending.expire(250);
    assert_eq!(late[0].outcome(&c), Outcome::ShadowFailed);
    assert!(pending.is_empty());
}

#[test]
fn failures_and_sizes_are_told_apart() {
    let c = compare(BodyMode::Exact, &[]);
    let mut pending = Pending::new(10);
    let cases = [
        (
            Side::Failed,
            Side::Answered(answer(200, "")),
            Side::Answered(answer(200, "")),
            "primary_incomplete",
        ),
        (
            Side::Answered(answer(200, "")),
            Side::Failed,
            Side::Answered(answer(200, "")),
            "shadow_failed",
        ),
        (
            Side::Answered(answer(200, "")),
            Side::Answered(answer(200, "")),
            Side::Failed,
            "baseline_failed",
        ),
        (
            Side::TooLarge,
            Side::Answered(answer(200, "")),
            Side::Answered(answer(200, "")),
            "too_large",
        ),
        (
            Side::Answered(answer(200, "a")),
            Side::Answered(answer(200, "b")),
            Side::Answered(answer(200, "a")),
            "differ",
        ),
    ];
    for (primary, candidate, baseline, expected) in cases {
        let id = pending.open(0, 0, "GET /".into(), true, 10).unwrap();
        pending.copy(id, Role::Candidate, candidate);
        pending.copy(id, Role::Baseline, baseline);
        let ready = pending.primary(id, primary).unwrap();
        assert_eq!(ready.outcome(&c).as_str(), expected);
    }
}
