use super::*;

fn mirror(per_million: u32, methods: Option<&[&str]>) -> Mirror {
    Mirror {
        cluster: "shadow".into(),
        per_million,
        host_suffix: "-shadow".into(),
        timeout_ms: 1000,
        max_body_bytes: 16,
        methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
        cluster_header: None,
        strip_headers: Vec::new(),
        compare: None,
    }
}

#[test]
fn shadow_host_suffix_goes_before_the_port() {
    let cases: [(&str, &str); 6] = [
        ("cluster1", "cluster1-shadow"),
        ("cluster1:8000", "cluster1-shadow:8000"),
        ("127.0.0.1:80", "127.0.0.1-shadow:80"),
        ("[::1]:80", "[::1]-shadow:80"),
        ("[::1]", "[::1]-shadow"),
        ("", "-shadow"),
    ];
    for (authority, expected) in cases {
        assert_eq!(
            shadow_authority(authority.as_bytes(), "-shadow"),
            expected.as_bytes()
        );
    }
    assert_eq!(shadow_authority(b"httpbin:8000", ""), b"httpbin:8000");
}

#[test]
fn sampling_rate_follows_percent() {
    let mut rng = Rng::from_seed(5);
    let twenty = mirror(200_000, None);
    let hits = (0..100_000)
        .filter(|_| twenty.admit(b"GET", &mut rng).is_ok())
        .count();
    assert!((19_000..=21_000).contains(&hits), "{hits}");
    assert_eq!(mirror(0, None).admit(b"GET", &mut rng), Err(Skip::Sampling));
    assert_eq!(mirror(PER_MILLION, None).admit(b"GET", &mut rng), Ok(()));
}

#[test]
fn one_in_a_million_is_possible_but_rare() {
    let mut rng = Rng::from_seed(6);
    let rare = mirror(1, None);
    let hits = (0..3_000_000)
        .filter(|_| rare.admit(b"GET", &mut rng).is_ok())
        .count();
    assert!((1..=10).contains(&hits), "{hits}");
}

#[test]
fn methods_allowlist_is_checked_before_sampling() {
    let mut rng = Rng::from_seed(7);
    let only_get = mirror(PER_MILLION, Some(&["GET", "HEAD"]));
    assert_eq!(only_get.admit(b"POST", &mut rng), Err(Skip::Method));
    assert_eq!(only_get.admit(b"get", &mut rng), Err(Skip::Method));
    assert_eq!(only_get.admit(b"HEAD", &mut rng), Ok(()));
}

fn headers<'a>(pairs: &'a [(&'a str, &'a [u8])]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    pairs.iter().map(|(n, v)| (n.as_bytes(), *v))
}

#[test]
fn shadow_headers_drop_framing_route_header_and_host() {
    let request = headers(&[
        (":method", b"POST"),
        (":path", b"/a?b=1"),
        (":authority", b"httpbin:8000"),
        (":scheme", b"http"),
        ("host", b"httpbin:8000"),
        ("content-length", b"5"),
        ("transfer-encoding", b"chunked"),
        ("x-split-cluster", b"v1"),
        ("x-split-mirror", b"forged"),
        ("x-request-id", b"abc"),
        ("x-binary", b"\xff\xfe"),
    ]);
    let shadow = ShadowHeaders::new(request, "x-split-cluster");
    let authority = shadow.authority_for(&mirror(PER_MILLION, None));
    let list = shadow.pairs(&authority, &[]);
    let names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            ":authority",
            ":method",
            ":path",
            ":scheme",
            "x-request-id",
            "x-split-mirror"
        ]
    );
    assert_eq!(list[0].1, "httpbin-shadow:8000");
    assert_eq!(list[2].1, "/a?b=1");
    assert_eq!(list[5].1, "1");
}

#[test]
fn shadow_headers_keep_te_trailers_only() {
    let copied_te = |te: Option<&[u8]>| {
        let mut request: Vec<(&str, &[u8])> = vec![
            (":method", b"POST"),
            (":path", b"/echo.Echo/Unary"),
            ("content-type", b"application/grpc"),
        ];
        if let Some(te) = te {
            request.push(("te", te));
        }
        let shadow = ShadowHeaders::new(headers(&request), "x-split-cluster");
        let list = shadow.pairs("grpc.test-shadow", &[]);
        let te: Vec<String> = list
            .iter()
            .filter(|(n, _)| *n == "te")
            .map(|(_, v)| v.to_string())
            .collect();
        assert_eq!(shadow.get("content-type"), Some("application/grpc"));
        te
    };
    // gRPC servers reset a request without it: the copy keeps it, written canonically.
    assert_eq!(copied_te(Some(b"trailers")), ["trailers"]);
    assert_eq!(copied_te(Some(b" Trailers ")), ["trailers"]);
    // Any other TE value is hop-by-hop (and not allowed in HTTP/2): dropped.
    assert!(copied_te(Some(b"gzip")).is_empty());
    assert!(copied_te(Some(b"trailers, deflate")).is_empty());
    assert!(copied_te(Some(b"")).is_empty());
    assert!(copied_te(None).is_empty());
}

#[test]
fn body_copy_stops_past_the_limit() {
    let mut within = BodyCopy::new(8);
    within.push(b"12345");
    assert!(within.wants(3));
    assert!(!within.wants(4));
    assert_eq!(within.into_shared().as_deref(), Some(&b"12345"[..]));
    let mut over = BodyCopy::new(8);
    over.push(b"12345");
    over.push(b"6789");
    over.push(b"1");
    assert_eq!(over.into_shared(), None, "a copy over the limit stays over");
}

#[test]
fn in_flight_cap_frees_on_answer_or_deadline() {
    let mut in_flight = InFlight::new(2);
    assert!(in_flight.has_room(0));
    in_flight.started(1, 1000);
    in_flight.started(2, 500);
    assert_eq!(in_flight.expire(100), 0);
    assert!(!in_flight.has_room(0));
    assert!(in_flight.finished(1));
    assert!(!in_flight.finished(1), "already finished");
    assert!(in_flight.has_room(0));
    in_flight.started(3, 1100);
    assert_eq!(in_flight.expire(499), 0);
    assert!(!in_flight.has_room(0));
    assert_eq!(in_flight.expire(500), 1, "token 2 passed its deadline");
    assert!(in_flight.has_room(0));
    assert_eq!(in_flight.len(), 1);
    assert!(
        !in_flight.has_room(1),
        "queued shadows count against the cap"
    );
}

#[test]
fn request_line_has_method_and_path_without_query() {
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":path", b"/cart?token=secret"),
        (b"x-other", b"1"),
    ];
    let shadow = ShadowHeaders::new(pairs, "x-split-cluster");
    assert_eq!(shadow.get("x-other"), Some("1"));
    assert_eq!(shadow.get("x-missing"), None);
    assert_eq!(shadow.request_line(), "POST /cart");
}
