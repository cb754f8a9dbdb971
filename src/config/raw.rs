//! The configuration exactly as users write it, read with serde before validation. Every
//! object refuses keys it does not know, so a typo is an error instead of a silent default;
//! `null` counts as an omitted field. The doc comments here are the descriptions of the
//! published JSON Schema (`split-mirror schema`, schema/split-mirror.schema.json).

use super::values::{Bounded, Described, Object, Percent};
use crate::weights::MAX_WEIGHT;
use serde::Deserialize;

pub const MAX_SHADOWS_IN_FLIGHT: u64 = 1_000_000;
pub const MAX_TIMEOUT_MS: u64 = 600_000;
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
const WEIGHT_MAX: u64 = MAX_WEIGHT as u64;

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

impl Described for RawSticky {
    const EXPECTED: &'static str = "a sticky object";
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
