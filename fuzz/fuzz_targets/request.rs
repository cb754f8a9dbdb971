//! The request path on arbitrary header values: host parsing, route matching with tagged
//! hosts, overrides, tags, sticky keys and cookies, the decision, and the shadow request
//! (authority suffix, header list), and the host's serialized header map. Never panics; the
//! chosen backend always exists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use split_mirror::config::Config;
use split_mirror::mirror::{header_map, shadow_authority, BodyCopy, ShadowHeaders};
use split_mirror::random::Rng;
use split_mirror::keys::cookie_value;
use split_mirror::routing::{RequestHeaders, RequestView};
use std::sync::OnceLock;

const CONFIG: &[u8] = br#"{"routes": [
  {"name": "httpbin", "hosts": ["httpbin", "[::1]", "*.example.com"],
   "backends": [{"cluster": "v1", "weight": 90, "tag": "current"},
                {"cluster": "v2", "weight": 10, "tag": "candidate"},
                {"cluster": "v3", "weight": 0, "tag": "dark"}],
   "overrides": [{"header": "x-canary", "value": "always", "backend": "v3"},
                 {"cookie": "canary", "prefix": "1", "backend": "v2"},
                 {"header": "x-beta", "present": true, "backend": "v2"}],
   "tag_header": "x-split-tag",
   "sticky": {"cookie": "uid", "set_cookie": true},
   "mirrors": [{"cluster": "shadow"}, {"cluster": "plain", "host_suffix": ""}]},
  {"name": "any", "path_prefix": "/api", "backends": [{"cluster": "a"}],
   "sticky": {"header": "x-user"}}
]}"#;

/// Header values cut from the input: `\0`-separated fields, in a fixed order.
struct Fields<'a> {
    values: Vec<&'a [u8]>,
}

const NAMES: [&str; 7] = [
    ":authority",
    ":path",
    "cookie",
    "x-canary",
    "x-split-tag",
    "x-user",
    "x-beta",
];

impl RequestHeaders for Fields<'_> {
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        let index = NAMES.iter().position(|n| *n == name)?;
        self.values.get(index).map(|v| v.to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    // The host's serialized header map, read in place: any bytes, never a panic or an over-read.
    if let Some(pairs) = header_map::pairs(data) {
        let _ = ShadowHeaders::new(pairs, "x-split-cluster").pairs("a", &[]);
    }
    static COMPILED: OnceLock<Config> = OnceLock::new();
    let config = COMPILED.get_or_init(|| Config::from_json(CONFIG).expect("fuzz config"));
    let values: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let authority = values.first().copied().unwrap_or_default();
    let path = values.get(1).copied().unwrap_or_default();
    let request = RequestView { authority, path };
    let seed = data
        .iter()
        .fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
    let mut rng = Rng::from_seed(seed);
    if let Some(found) = config.match_route(&request) {
        let mut headers = Fields {
            values: values.clone(),
        };
        let decision = found
            .route
            .decide(found.tagged_backend, &mut headers, &mut rng);
        assert!(decision.backend < found.route.backends.len());
        for mirror in &found.route.mirrors {
            let _ = mirror.admit(path, &mut rng);
            let shadow = ShadowHeaders::new(
                NAMES
                    .iter()
                    .zip(&values)
                    .map(|(n, v)| (n.as_bytes(), &v[..])),
                &config.route_header,
            );
            let authority = shadow.authority_for(mirror);
            let list = shadow.pairs(&authority, &[]);
            assert!(list
                .iter()
                .all(|(name, _)| *name != config.route_header && *name != "host"));
        }
    }
    for value in &values {
        let _ = cookie_value(value, "uid");
        let _ = shadow_authority(value, "-shadow");
    }
    let mut body = BodyCopy::new(64);
    for value in &values {
        body.push(value);
    }
    let _ = body.into_shared();
});
