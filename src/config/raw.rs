//! The configuration exactly as users write it, decoded from JSON before validation. Every
//! object refuses keys it does not know, so a typo is an error instead of a silent default.

use super::decode::{array, boolean, integer, percent, string, strings, At, Decoded, Fields};
use super::json::Json;
use crate::weights::MAX_WEIGHT;

#[derive(Debug)]
pub struct RawConfig {
    pub route_header: Option<String>,
    pub response_header: Option<String>,
    pub max_shadows_in_flight: Option<u64>,
    pub routes: Vec<RawRoute>,
}

#[derive(Debug)]
pub struct RawRoute {
    pub name: String,
    pub hosts: Option<Vec<String>>,
    pub path_prefix: Option<String>,
    pub backends: Vec<RawBackend>,
    pub mirrors: Option<Vec<RawMirror>>,
    pub overrides: Option<Vec<RawOverride>>,
    pub tag_header: Option<String>,
    pub sticky: Option<RawSticky>,
}

#[derive(Debug)]
pub struct RawBackend {
    pub cluster: String,
    pub weight: Option<u64>,
    pub tag: Option<String>,
}

#[derive(Debug)]
pub struct RawMirror {
    pub cluster: String,
    /// Millionths.
    pub percent: Option<u32>,
    pub host_suffix: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub methods: Option<Vec<String>>,
    pub cluster_header: Option<String>,
}

/// `{"header": NAME}` or `{"cookie": NAME}`, then `value`, `prefix` or `present`, and `backend`.
#[derive(Debug)]
pub struct RawOverride {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub value: Option<String>,
    pub prefix: Option<String>,
    pub present: Option<bool>,
    pub backend: String,
}

#[derive(Debug)]
pub struct RawSticky {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub set_cookie: Option<bool>,
}

pub const MAX_SHADOWS_IN_FLIGHT: u64 = 1_000_000;
pub const MAX_TIMEOUT_MS: u64 = 600_000;
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

impl RawConfig {
    // Out of line: see `Config::from_json` (V8 compile memory).
    #[inline(never)]
    pub fn decode(value: &Json) -> Decoded<Self> {
        let known = [
            "route_header",
            "response_header",
            "max_shadows_in_flight",
            "routes",
        ];
        let fields = Fields::of(value, &At::ROOT, &known, "a JSON object with `routes`")?;
        Ok(RawConfig {
            route_header: fields.optional("route_header", string)?,
            response_header: fields.optional("response_header", string)?,
            max_shadows_in_flight: fields.optional("max_shadows_in_flight", |v, at| {
                integer(v, at, 1, MAX_SHADOWS_IN_FLIGHT)
            })?,
            routes: fields.required("routes", |v, at| array(v, at, RawRoute::decode))?,
        })
    }
}

impl RawRoute {
    // Out of line: see `Config::from_json` (V8 compile memory).
    #[inline(never)]
    fn decode(value: &Json, at: &At) -> Decoded<Self> {
        let known = [
            "name",
            "hosts",
            "path_prefix",
            "backends",
            "mirrors",
            "overrides",
            "tag_header",
            "sticky",
        ];
        let fields = Fields::of(value, at, &known, "a route object")?;
        Ok(RawRoute {
            name: fields.required("name", string)?,
            hosts: fields.optional("hosts", strings)?,
            path_prefix: fields.optional("path_prefix", string)?,
            backends: fields.required("backends", |v, at| array(v, at, RawBackend::decode))?,
            mirrors: fields.optional("mirrors", |v, at| array(v, at, RawMirror::decode))?,
            overrides: fields.optional("overrides", |v, at| array(v, at, RawOverride::decode))?,
            tag_header: fields.optional("tag_header", string)?,
            sticky: fields.optional("sticky", RawSticky::decode)?,
        })
    }
}

impl RawBackend {
    // Out of line: see `Config::from_json` (V8 compile memory).
    #[inline(never)]
    fn decode(value: &Json, at: &At) -> Decoded<Self> {
        let fields = Fields::of(value, at, &["cluster", "weight", "tag"], "a backend object")?;
        Ok(RawBackend {
            cluster: fields.required("cluster", string)?,
            weight: fields.optional("weight", |v, at| integer(v, at, 0, u64::from(MAX_WEIGHT)))?,
            tag: fields.optional("tag", string)?,
        })
    }
}

impl RawMirror {
    // Out of line: see `Config::from_json` (V8 compile memory).
    #[inline(never)]
    fn decode(value: &Json, at: &At) -> Decoded<Self> {
        let known = [
            "cluster",
            "percent",
            "host_suffix",
            "timeout_ms",
            "max_body_bytes",
            "methods",
            "cluster_header",
        ];
        let fields = Fields::of(value, at, &known, "a mirror object")?;
        Ok(RawMirror {
            cluster: fields.required("cluster", string)?,
            percent: fields.optional("percent", percent)?,
            host_suffix: fields.optional("host_suffix", string)?,
            timeout_ms: fields.optional("timeout_ms", |v, at| integer(v, at, 1, MAX_TIMEOUT_MS))?,
            max_body_bytes: fields
                .optional("max_body_bytes", |v, at| integer(v, at, 0, MAX_BODY_BYTES))?,
            methods: fields.optional("methods", strings)?,
            cluster_header: fields.optional("cluster_header", string)?,
        })
    }
}

impl RawOverride {
    // Out of line: see `Config::from_json` (V8 compile memory).
    #[inline(never)]
    fn decode(value: &Json, at: &At) -> Decoded<Self> {
        let known = ["header", "cookie", "value", "prefix", "present", "backend"];
        let fields = Fields::of(value, at, &known, "an override object")?;
        Ok(RawOverride {
            header: fields.optional("header", string)?,
            cookie: fields.optional("cookie", string)?,
            value: fields.optional("value", string)?,
            prefix: fields.optional("prefix", string)?,
            present: fields.optional("present", boolean)?,
            backend: fields.required("backend", string)?,
        })
    }
}

impl RawSticky {
    // Out of line: see `Config::from_json` (V8 compile memory).
    #[inline(never)]
    fn decode(value: &Json, at: &At) -> Decoded<Self> {
        let fields = Fields::of(
            value,
            at,
            &["header", "cookie", "set_cookie"],
            "a sticky object",
        )?;
        Ok(RawSticky {
            header: fields.optional("header", string)?,
            cookie: fields.optional("cookie", string)?,
            set_cookie: fields.optional("set_cookie", boolean)?,
        })
    }
}
