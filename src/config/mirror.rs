//! Compiling a route's `mirrors` entries.

use super::error::in_route;
use super::raw::{RawBodyMode, RawCompare, RawMirror};
use super::values::Object;
use super::{
    check_header_name, check_label, ConfigError, DEFAULT_HOST_SUFFIX, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MIRROR_TIMEOUT_MS,
};
use crate::compare::{BodyMode, Compare, Pointer, DEFAULT_COMPARE_BODY_BYTES};
use crate::mirror::{Mirror, PER_MILLION};

// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
pub(super) fn compile_mirror(
    mut raw: RawMirror,
    label: &str,
    index: usize,
) -> Result<Mirror, ConfigError> {
    let field = |name: &str| format!("mirrors[{index}].{name}");
    check_label(&raw.cluster, "cluster name").map_err(|m| in_route(label, &field("cluster"), m))?;
    let cluster_header = match raw.cluster_header.take() {
        None => None,
        Some(name) => {
            let name = check_header_name(&name)
                .map_err(|m| in_route(label, &field("cluster_header"), m))?;
            // Envoy sends the copy with its own settings: refuse ours rather than ignore them.
            let envoy_owned = [
                ("host_suffix", raw.host_suffix.is_some()),
                ("timeout_ms", raw.timeout_ms.is_some()),
                ("max_body_bytes", raw.max_body_bytes.is_some()),
            ];
            if let Some((option, _)) = envoy_owned.iter().find(|(_, set)| *set) {
                return Err(in_route(
                    label,
                    &field(option),
                    "not used with `cluster_header`: Envoy's request mirror policy sends the copy \
                     (set the timeout on the route, the body limit with the connection manager)",
                ));
            }
            Some(name)
        }
    };
    let host_suffix = raw
        .host_suffix
        .unwrap_or_else(|| DEFAULT_HOST_SUFFIX.to_string());
    if !host_suffix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(in_route(
            label,
            &field("host_suffix"),
            format!("expected letters, digits, `-` or `.`, got \"{host_suffix}\""),
        ));
    }
    let methods = match raw.methods {
        None => None,
        Some(methods) if methods.is_empty() => {
            return Err(in_route(
                label,
                &field("methods"),
                "expected at least one method (omit `methods` to mirror every method)",
            ))
        }
        Some(methods) => {
            let mut upper = Vec::with_capacity(methods.len());
            for (m, method) in methods.iter().enumerate() {
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(in_route(
                        label,
                        &field(&format!("methods[{m}]")),
                        format!("expected an HTTP method such as \"GET\", got \"{method}\""),
                    ));
                }
                upper.push(method.to_ascii_uppercase());
            }
            Some(upper)
        }
    };
    let mut strip_headers = Vec::new();
    for (i, name) in raw
        .strip_headers
        .take()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        strip_headers.push(
            check_header_name(name)
                .map_err(|m| in_route(label, &field(&format!("strip_headers[{i}]")), m))?,
        );
    }
    let compare =
        match raw.compare.take() {
            None => None,
            Some(_) if cluster_header.is_some() => return Err(in_route(
                label,
                &field("compare"),
                "not used with `cluster_header`: only a copy the filter sends returns its answer \
                 to the filter",
            )),
            Some(Object(compare)) => Some(compile_compare(compare, &raw.cluster, label, index)?),
        };
    Ok(Mirror {
        strip_headers,
        compare,
        cluster: raw.cluster,
        per_million: raw.percent.map_or(PER_MILLION, |p| p.0),
        host_suffix,
        // Both bounded by their deserializers (600,000 and 64 MiB): the casts cannot truncate.
        timeout_ms: raw
            .timeout_ms
            .map_or(DEFAULT_MIRROR_TIMEOUT_MS, |t| t.0 as u32),
        max_body_bytes: raw
            .max_body_bytes
            .map_or(DEFAULT_MAX_BODY_BYTES, |b| b.0 as usize),
        methods,
        cluster_header,
    })
}

fn compile_compare(
    raw: RawCompare,
    cluster: &str,
    label: &str,
    index: usize,
) -> Result<Compare, ConfigError> {
    let field = |name: &str| format!("mirrors[{index}].compare.{name}");
    let mut headers = Vec::new();
    for (i, name) in raw.headers.unwrap_or_default().iter().enumerate() {
        headers.push(
            check_header_name(name)
                .map_err(|m| in_route(label, &field(&format!("headers[{i}]")), m))?,
        );
    }
    let mut ignore = Vec::new();
    for (i, pointer) in raw.ignore.unwrap_or_default().iter().enumerate() {
        ignore.push(
            Pointer::parse(pointer)
                .map_err(|m| in_route(label, &field(&format!("ignore[{i}]")), m))?,
        );
    }
    let body = match raw.body {
        None | Some(RawBodyMode::None) => BodyMode::None,
        Some(RawBodyMode::Exact) => BodyMode::Exact,
        Some(RawBodyMode::Json) => BodyMode::Json,
    };
    if !ignore.is_empty() && body != BodyMode::Json {
        return Err(in_route(
            label,
            &field("ignore"),
            "only used with `\"body\": \"json\"`",
        ));
    }
    if let Some(baseline) = &raw.baseline {
        check_label(baseline, "cluster name")
            .map_err(|m| in_route(label, &field("baseline"), m))?;
        if baseline == cluster {
            return Err(in_route(
                label,
                &field("baseline"),
                "is the mirror's own cluster: the baseline runs the primary's version",
            ));
        }
    }
    Ok(Compare {
        headers,
        body,
        ignore,
        // Bounded to 16 MiB by its deserializer: the cast cannot truncate.
        max_body_bytes: raw
            .max_body_bytes
            .map_or(DEFAULT_COMPARE_BODY_BYTES, |b| b.0 as usize),
        baseline: raw.baseline,
    })
}
