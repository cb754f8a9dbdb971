//! Compiling release control: overrides, tags and the sticky key of a route.

use super::error::in_route;
use super::raw::{RawOverride, RawSticky};
use super::values::Object;
use super::{check_header_name, Backend, ConfigError, Override, Sticky};
use crate::hosts::HostPattern;
use crate::keys::{KeySource, ValueMatch};

pub(super) struct Release {
    pub overrides: Vec<Override>,
    pub tags: Vec<(String, usize)>,
    pub tagged_hosts: Vec<(String, usize)>,
    pub tag_header: Option<String>,
    pub sticky: Option<Sticky>,
}

// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
pub(super) fn compile(
    raw_overrides: Vec<Object<RawOverride>>,
    raw_tag_header: Option<String>,
    raw_sticky: Option<RawSticky>,
    backends: &[Backend],
    hosts: &[HostPattern],
    label: &str,
) -> Result<Release, ConfigError> {
    let mut overrides = Vec::with_capacity(raw_overrides.len());
    for (i, Object(raw)) in raw_overrides.into_iter().enumerate() {
        overrides.push(
            compile_override(raw, backends)
                .map_err(|(field, m)| in_route(label, &format!("overrides[{i}].{field}"), m))?,
        );
    }
    let tags: Vec<(String, usize)> = backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| Some((b.tag.clone()?, i)))
        .collect();
    let tagged_hosts = tags
        .iter()
        .flat_map(|(tag, backend)| {
            hosts.iter().filter_map(move |host| match host {
                HostPattern::Exact(name) => Some((format!("{tag}-{name}"), *backend)),
                HostPattern::Subdomains(_) => None,
            })
        })
        .collect();
    let tag_header = raw_tag_header
        .map(|name| check_header_name(&name))
        .transpose()
        .map_err(|m| in_route(label, "tag_header", m))?;
    let sticky = raw_sticky
        .map(compile_sticky)
        .transpose()
        .map_err(|(field, m)| in_route(label, &format!("sticky{field}"), m))?;
    Ok(Release {
        overrides,
        tags,
        tagged_hosts,
        tag_header,
        sticky,
    })
}

/// A tag: a DNS label (it prefixes host names), unique in the route. Returns it lower-case.
pub(super) fn check_tag(tag: &str, earlier: &[Backend]) -> Result<String, String> {
    let valid = !tag.is_empty()
        && tag.len() <= 63
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !tag.starts_with('-')
        && !tag.ends_with('-');
    if !valid {
        return Err(format!(
            "expected a DNS label (letters, digits, `-`), got \"{tag}\""
        ));
    }
    let tag = tag.to_ascii_lowercase();
    if let Some(first) = earlier
        .iter()
        .position(|b| b.tag.as_deref() == Some(tag.as_str()))
    {
        return Err(format!("\"{tag}\" is already the tag of backends[{first}]"));
    }
    Ok(tag)
}

/// `header` or `cookie`, exactly one; the error is `(field, message)`.
fn key_source(
    header: Option<String>,
    cookie: Option<String>,
) -> Result<KeySource, (&'static str, String)> {
    match (header, cookie) {
        (Some(name), None) => check_header_name(&name)
            .map(KeySource::Header)
            .map_err(|m| ("header", m)),
        (None, Some(name)) if is_cookie_name(&name) => Ok(KeySource::Cookie(name)),
        (None, Some(name)) => Err(("cookie", format!("expected a cookie name, got \"{name}\""))),
        (Some(_), Some(_)) => Err(("cookie", "give `header` or `cookie`, not both".into())),
        (None, None) => Err(("header", "expected `header` or `cookie`".into())),
    }
}

fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn compile_override(
    raw: RawOverride,
    backends: &[Backend],
) -> Result<Override, (&'static str, String)> {
    let source = key_source(raw.header, raw.cookie)?;
    let value = match (raw.value, raw.prefix, raw.present) {
        (Some(value), None, None) => ValueMatch::Exact(value.into_bytes()),
        (None, Some(prefix), None) => ValueMatch::Prefix(prefix.into_bytes()),
        (None, None, Some(true)) => ValueMatch::Present,
        (None, None, Some(false)) => {
            return Err((
                "present",
                "only `true` is meaningful; omit the override instead".into(),
            ))
        }
        _ => {
            return Err((
                "value",
                "give exactly one of `value`, `prefix` or `present`".into(),
            ))
        }
    };
    let backend = backends
        .iter()
        .position(|b| b.cluster == raw.backend)
        .ok_or_else(|| {
            (
                "backend",
                format!(
                    "\"{}\" is not the cluster of one of this route's backends",
                    raw.backend
                ),
            )
        })?;
    Ok(Override {
        source,
        value,
        backend,
    })
}

fn compile_sticky(raw: RawSticky) -> Result<Sticky, (String, String)> {
    let source =
        key_source(raw.header, raw.cookie).map_err(|(field, m)| (format!(".{field}"), m))?;
    let set_cookie = raw.set_cookie.unwrap_or(false);
    if set_cookie && !matches!(source, KeySource::Cookie(_)) {
        return Err((
            ".set_cookie".into(),
            "only a `cookie` sticky key can be minted".into(),
        ));
    }
    Ok(Sticky { source, set_cookie })
}
