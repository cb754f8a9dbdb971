//! The configuration exactly as users write it, read with serde before validation. Every
//! object refuses keys it does not know, so a typo is an error instead of a silent default;
//! `null` counts as an omitted field. The doc comments here are the descriptions of the
//! published JSON Schema (`split-mirror schema`, schema/split-mirror.schema.json).

use super::values::{Bounded, Described, Fraction, Object, Percent, Real};
use crate::weights::MAX_WEIGHT;
use serde::Deserialize;

pub const MAX_SHADOWS_IN_FLIGHT: u64 = 1_000_000;
pub const MAX_TIMEOUT_MS: u64 = 600_000;
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
pub const MAX_COMPARE_BODY_BYTES: u64 = 16 * 1024 * 1024;
const WEIGHT_MAX: u64 = MAX_WEIGHT as u64;
/// One year: the longest a rollout step may hold.
pub const MAX_HOLD_S: u64 = 31_536_000;
pub const MAX_WINDOW_S: u64 = 3600;
pub const MAX_MIN_REQUESTS: u64 = 1_000_000_000;
pub const MAX_LATENCY_MS: u64 = 600_000;

/// split-mirror: the plugin configuration (Envoy's wasm filter `configuration`, Istio's
/// WasmPlugin `pluginConfig`).
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(
        title = "split-mirror configuration",
        extend("anyOf" = [{"required": ["routes"]}, {"required": ["tcp_routes"]}])
    )
)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Request header the filter writes the chosen cluster into, for Envoy's `cluster_header`
    /// (or an Istio VirtualService header match). An HTTP token, stored lower-case; `host`,
    /// `content-length`, `transfer-encoding`, `connection` and pseudo-headers are refused.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = "x-split-cluster")))]
    pub route_header: Option<String>,
    /// Response header naming the chosen cluster, for debugging. Off unless set.
    pub response_header: Option<String>,
    /// Per Envoy worker: shadows sent and not yet finished. Beyond it a mirror skips the copy
    /// and counts `skipped_in_flight_cap`.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 1000)))]
    pub max_shadows_in_flight: Option<Bounded<1, MAX_SHADOWS_IN_FLIGHT>>,
    /// HTTP routes, for the HTTP filter (any `root_id` but `split-mirror-tcp`), which refuses
    /// a configuration without them. At least one; the first route that matches a request wins.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub routes: Option<Vec<Object<RawRoute>>>,
    /// Connection routes, for the network filter (`root_id` `split-mirror-tcp`, before
    /// `tcp_proxy`), which refuses a configuration without them. At least one; the first route
    /// whose `sni_hosts` match the connection wins.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub tcp_routes: Option<Vec<Object<RawTcpRoute>>>,
}

/// Which connections it takes (by TLS SNI) and how it splits them between clusters; the choice
/// reaches `tcp_proxy` through the `envoy.tcp_proxy.cluster` filter state.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "TcpRoute", title = "TCP route")
)]
#[serde(deny_unknown_fields)]
pub struct RawTcpRoute {
    /// Non-empty, unique among `tcp_routes`; no `;`, `=` or whitespace (it labels metrics).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
    /// Matched against the SNI the client sent (`connection.requested_server_name`), ASCII
    /// case-insensitively; `*.example.com` matches any subdomain of `example.com`. Omitted: any
    /// connection, with or without SNI (plain TCP included).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub sni_hosts: Option<Vec<String>>,
    /// At least one. Weighted choice between them; `cluster` is the cluster `tcp_proxy`
    /// connects to.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub backends: Vec<Object<RawTcpBackend>>,
    /// Hash the client's IP address onto the weights: one client stays on one backend,
    /// monotone when weights ramp.
    pub sticky: Option<Object<RawTcpSticky>>,
    /// A canary that ramps by the clock (`steps` from `start`, as an HTTP route's rollout),
    /// and that can stop with an HTTP route's guard (`follow`).
    pub rollout: Option<Object<RawTcpRollout>>,
}

/// A TCP route's rollout: the same steps and clock as an HTTP route's, without a guard of its
/// own (a connection has no status); `follow` takes the abort of an HTTP route's guard.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "TcpRollout", title = "TCP rollout")
)]
#[serde(deny_unknown_fields)]
pub struct RawTcpRollout {
    /// The `cluster` of one of the route's backends: the one that ramps (and that an abort of
    /// the followed route takes out of new connections).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub canary: String,
    /// RFC 3339 time when step 1 begins, as for HTTP rollouts. Required with `steps`.
    pub start: Option<String>,
    /// As for HTTP rollouts: the canary's share per step, never decreasing.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub steps: Option<Vec<Object<RawStep>>>,
    /// The `name` of an HTTP route of this configuration whose rollout has a `guard`: when
    /// that guard aborts, new connections stop going to this canary. The network filter reads
    /// the abort from the host's shared data, so give it the same configuration and `vm_id`
    /// as the HTTP filter.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub follow: Option<String>,
}

/// One backend of a TCP route: a cluster and its weight.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "TcpBackend", title = "TCP backend")
)]
#[serde(deny_unknown_fields)]
pub struct RawTcpBackend {
    /// Non-empty, unique in the route: the cluster `tcp_proxy` connects to.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub cluster: String,
    /// Relative weight, as for HTTP backends. The route's weights must sum above 0.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 1)))]
    pub weight: Option<Bounded<0, WEIGHT_MAX>>,
}

/// The sticky key of a TCP route: the client's IP address (without its port).
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "TcpSticky", title = "TCP sticky key")
)]
#[serde(deny_unknown_fields)]
pub struct RawTcpSticky {
    /// `true`: the backend is chosen by the client's IP address (IPv4 or IPv6).
    pub source_address: bool,
}

/// Which requests it takes (hosts, path prefix) and how it splits and mirrors them.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "Route", title = "Route")
)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Non-empty, unique; no `;`, `=` or whitespace (it labels metrics).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
    /// Matched against `:authority` without its port, ASCII case-insensitively. `*.example.com`
    /// matches any subdomain of `example.com`, not `example.com` itself. Omitted: any host.
    pub hosts: Option<Vec<String>>,
    /// Byte prefix of `:path` (query included). Must start with `/`.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = "/")))]
    pub path_prefix: Option<String>,
    /// At least one. Weighted choice between them; `cluster` is the value written into the
    /// route header.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub backends: Vec<Object<RawBackend>>,
    /// Fire-and-forget copies of a share of the route's requests to shadow clusters.
    pub mirrors: Option<Vec<Object<RawMirror>>>,
    /// Header or cookie values that send the request to one backend whatever the weights;
    /// checked in order, the first that matches wins.
    pub overrides: Option<Vec<Object<RawOverride>>>,
    /// Request header whose value names a backend's `tag`.
    pub tag_header: Option<String>,
    /// A request key (header or cookie) hashed onto the weights, so one user stays on one
    /// backend, monotone when weights ramp.
    pub sticky: Option<Object<RawSticky>>,
    /// Progressive delivery without a controller: the canary's share ramps through `steps`
    /// from the wall clock, and a `guard` aborts the rollout when the canary fails.
    pub rollout: Option<Object<RawRollout>>,
}

/// One backend of a route: a cluster and its weight.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "Backend", title = "Backend")
)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// Non-empty, unique in the route: the cluster name written into the route header.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub cluster: String,
    /// Relative weight (weights need not sum to 100). `50.0` and `5e1` are accepted as 50;
    /// `50.5` is refused. The route's weights must sum above 0.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 1)))]
    pub weight: Option<Bounded<0, WEIGHT_MAX>>,
    /// A DNS label, unique in the route: `<tag>-<host>` and the route's `tag_header` reach
    /// this backend.
    pub tag: Option<String>,
}

/// A shadow cluster that receives fire-and-forget copies of a share of the route's requests.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "Mirror", title = "Mirror")
)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    /// The shadow cluster.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub cluster: String,
    /// Share of the route's requests copied, in percent with at most 4 decimals.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 100)))]
    pub percent: Option<Percent>,
    /// Appended to the shadow's `:authority` host, as Envoy's mirrors do.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = "-shadow")))]
    pub host_suffix: Option<String>,
    /// How long a shadow may take before it is abandoned (and counted as a timeout).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 1000)))]
    pub timeout_ms: Option<Bounded<1, MAX_TIMEOUT_MS>>,
    /// Requests with a larger body are not copied (counted as `skipped_body_too_large`).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 1_048_576)))]
    pub max_body_bytes: Option<Bounded<0, MAX_BODY_BYTES>>,
    /// Only these methods are mirrored. Omitted: every method.
    pub methods: Option<Vec<String>>,
    /// Envoy sends the copy (its `request_mirror_policies` with this `cluster_header`); the
    /// filter only samples. Excludes `host_suffix`, `timeout_ms` and `max_body_bytes`.
    pub cluster_header: Option<String>,
    /// Request headers never copied to this shadow (e.g. credentials that must not reach a test
    /// environment), case-insensitive.
    pub strip_headers: Option<Vec<String>>,
    /// Compare the shadow's answer with the primary's (Diffy's method, in the proxy).
    pub compare: Option<Object<RawCompare>>,
}

/// How a shadow's answer is compared with the primary's. The status (and for gRPC the
/// `grpc-status`) is always compared.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "Compare", title = "Compare")
)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    /// Response headers whose values must be equal (case-insensitive names; absent on both
    /// sides is equal).
    pub headers: Option<Vec<String>>,
    /// `none`: bodies are not compared; `exact`: same bytes; `json`: equal as JSON values after
    /// removing `ignore` (a body that is not JSON on either side is compared exactly).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = "none")))]
    pub body: Option<RawBodyMode>,
    /// JSON Pointers (RFC 6901) removed from both bodies before comparing; a segment `*`
    /// matches any object key or array index.
    pub ignore: Option<Vec<String>>,
    /// A primary or shadow body larger than this is not compared (`too_large`).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 65536)))]
    pub max_body_bytes: Option<Bounded<0, MAX_COMPARE_BODY_BYTES>>,
    /// A cluster running the primary's version (Diffy's secondary): it gets the same copy, and
    /// a difference it shares with the candidate is noise, not a regression.
    pub baseline: Option<String>,
}

/// The body comparison of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RawBodyMode {
    None,
    Exact,
    Json,
}

/// `header` or `cookie`; then exactly one of `value`, `prefix`, `present`; and `backend`.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "Override", title = "Override")
)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    /// Request header to read (give `header` or `cookie`).
    pub header: Option<String>,
    /// Cookie to read (give `header` or `cookie`).
    pub cookie: Option<String>,
    /// Matches when the value is exactly this.
    pub value: Option<String>,
    /// Matches when the value starts with this.
    pub prefix: Option<String>,
    /// `true`: matches when the header or cookie is present.
    pub present: Option<bool>,
    /// The `cluster` of one of the route's backends.
    pub backend: String,
}

/// Where the sticky key is read: `header` or `cookie`.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "Sticky", title = "Sticky key")
)]
#[serde(deny_unknown_fields)]
pub struct RawSticky {
    /// Request header holding the key.
    pub header: Option<String>,
    /// Cookie holding the key.
    pub cookie: Option<String>,
    /// With `cookie`: mint a random key in a `Set-Cookie` when the request has none.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = false)))]
    pub set_cookie: Option<bool>,
}

/// A canary that ramps by the clock (`steps` from `start`) and stops itself (`guard`).
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "Rollout", title = "Rollout")
)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    /// The `cluster` of one of the route's backends: the one that ramps (and that an abort
    /// takes out of weighted and sticky decisions).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub canary: String,
    /// RFC 3339 time (`2026-12-01T10:00:00Z` or with an offset) when step 1 begins. Before
    /// it, the backends' configured weights apply. Required with `steps`.
    pub start: Option<String>,
    /// At least one; the canary's share never decreases from step to step. Each step holds
    /// for `hold_s`, then the next begins; a step without `hold_s` holds until the
    /// configuration changes (Argo's `pause: {}`); the last step holds forever.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub steps: Option<Vec<Object<RawStep>>>,
    /// Aborts the rollout on this proxy when the canary's 5xx share is too high.
    pub guard: Option<Object<RawGuard>>,
}

/// One step of a rollout: the canary's share and how long it holds.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "RolloutStep", title = "Rollout step")
)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// The canary's share of weighted decisions in percent, 0..=100 with at most 2 decimals;
    /// the other backends share the rest in proportion to their configured weights.
    pub weight: Percent,
    /// Seconds the step holds before the next one (1..=31,536,000). Omitted: holds until the
    /// configuration changes.
    pub hold_s: Option<Bounded<1, MAX_HOLD_S>>,
}

/// The automatic abort: a sequential test (a CUSUM, checked after every canary answer, see
/// docs/guard.md) aborts when the evidence shows the canary's 5xx share above `max_error_rate`
/// and above the other backends' share; with `max_latency_ms`, the same test on the share of
/// slow answers. The canary's weight then becomes 0 on this proxy.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(rename = "RolloutGuard", title = "Rollout guard")
)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// The highest acceptable 5xx share of the canary's answers, 0..=1.
    pub max_error_rate: Fraction,
    /// No abort before this proxy worker has seen this many canary answers.
    pub min_requests: Bounded<1, MAX_MIN_REQUESTS>,
    /// Seconds (1..=3600): the canary is compared with the other backends while they answer;
    /// after this long without an answer from them (the last step) it is judged alone. The
    /// abort message reports the counts of this window.
    pub window_s: Bounded<1, MAX_WINDOW_S>,
    /// The multiple of the limits the test is built to catch (1.5..=10): a canary failing at
    /// `sensitivity × max_error_rate` is aborted after a few thousand answers at most, one
    /// failing at the limit rarely, one at half of it practically never.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 2)))]
    pub sensitivity: Option<Real<1_500_000, 10_000_000>>,
    /// The chance (0.000001..=0.5) that a canary failing at half the limit is aborted over one
    /// day at 1,000 answers per second per worker (86.4 M answers); proportionally less at lower
    /// traffic. Lower is slower to abort a bad canary.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 0.01)))]
    pub false_abort_rate: Option<Real<1, 500_000>>,
    /// Milliseconds (1..=600000) from the request's headers to the response's headers above
    /// which an answer is slow (Envoy's own 504 timeouts count as slow and as 5xx). Omitted: no
    /// latency guard.
    pub max_latency_ms: Option<Bounded<1, MAX_LATENCY_MS>>,
    /// The highest acceptable share of slow canary answers, 0..=1 (0.01: the canary's P99 is
    /// below `max_latency_ms`). Needs `max_latency_ms`.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(extend("default" = 0.01)))]
    pub max_slow_rate: Option<Fraction>,
}

impl Described for RawRollout {
    const EXPECTED: &'static str = "a rollout object";
}

impl Described for RawStep {
    const EXPECTED: &'static str = "a rollout step object";
}

impl Described for RawGuard {
    const EXPECTED: &'static str = "a guard object";
}

impl Described for RawConfig {
    const EXPECTED: &'static str = "a JSON object with `routes`";
}

impl Described for RawRoute {
    const EXPECTED: &'static str = "a route object";
}

impl Described for RawBackend {
    const EXPECTED: &'static str = "a backend object";
}

impl Described for RawMirror {
    const EXPECTED: &'static str = "a mirror object";
}

impl Described for RawOverride {
    const EXPECTED: &'static str = "an override object";
}

impl Described for RawCompare {
    const EXPECTED: &'static str = "a compare object";
}

impl Described for RawSticky {
    const EXPECTED: &'static str = "a sticky object";
}

impl Described for RawTcpRollout {
    const EXPECTED: &'static str = "a tcp rollout object";
}

impl Described for RawTcpRoute {
    const EXPECTED: &'static str = "a tcp route object";
}

impl Described for RawTcpBackend {
    const EXPECTED: &'static str = "a backend object";
}

impl Described for RawTcpSticky {
    const EXPECTED: &'static str = "a sticky object";
}
