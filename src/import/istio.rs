//! Istio `VirtualService`: `http[]` entries with weighted destinations become routes (with
//! `uri.prefix`, `mirror`/`mirrorPercentage`, `mirrors[]`), a header match that sends to one
//! destination becomes an override, `tls[]` entries become `tcp_routes`.

use super::documents::Resource;
use super::model::{
    percent_value, OutBackend, OutConfig, OutMirror, OutOverride, OutRoute, OutTcpBackend,
    OutTcpRoute,
};
use super::naming::{host_forms, Destination};
use super::{error, list, number, port, text, Ctx};
use serde_json::Value;

/// `http[]` fields that are not a choice of backend: the VirtualService keeps them.
const KEPT_BY_THE_VIRTUAL_SERVICE: &[&str] = &[
    "rewrite",
    "timeout",
    "retries",
    "fault",
    "corsPolicy",
    "headers",
    "directResponse",
    "redirect",
    "delegate",
];

const KEPT_WHY: &str = "not a choice of backend: Envoy applies it from the VirtualService, \
which keeps it (--wasmplugin keeps it on each header route)";

/// A header match of an `http[]` entry that sends to one destination: an override of the
/// weighted route after it that has this destination.
struct Candidate {
    entry: usize,
    header: String,
    value: Option<String>,
    prefix: Option<String>,
    cluster: String,
}

pub fn import(
    ctx: &mut Ctx,
    resources: &[Resource],
    index: usize,
    out: &mut OutConfig,
) -> Result<(), String> {
    let vs = &resources[index];
    let spec = vs.at("/spec").cloned().unwrap_or(Value::Null);
    let namespace = ctx.namespace(vs);
    let mut hosts: Option<Vec<String>> = Some(Vec::new());
    for (i, host) in list(vs, &spec, "hosts", "spec")?.iter().enumerate() {
        let host = host
            .as_str()
            .ok_or_else(|| error(vs, &format!("spec.hosts[{i}]"), "expected a string"))?;
        match (host_forms(host, &namespace), hosts.as_mut()) {
            (Some(forms), Some(all)) => {
                for form in forms {
                    if !all.contains(&form) {
                        all.push(form);
                    }
                }
            }
            _ => hosts = None,
        }
    }
    if spec.get("gateways").is_some() {
        ctx.note(
            vs,
            "spec.gateways",
            "where the filter runs is the WasmPlugin's selector, not the configuration",
        );
    }
    if spec.get("tcp").is_some() {
        ctx.note(
            vs,
            "spec.tcp",
            "plain TCP routes by port are left to the VirtualService (only tls[] by SNI is imported)",
        );
    }
    let http = list(vs, &spec, "http", "spec")?;
    let first_route = out.routes.len();
    let mut candidates = Vec::new();
    for (i, entry) in http.iter().enumerate() {
        let path = format!("spec.http[{i}]");
        let name = if http.len() == 1 {
            vs.name.clone()
        } else {
            match entry.get("name").and_then(Value::as_str) {
                Some(name) => format!("{}-{name}", vs.name),
                None => format!("{}-{i}", vs.name),
            }
        };
        http_entry(
            ctx,
            vs,
            index,
            entry,
            &path,
            &name,
            &hosts,
            out,
            &mut candidates,
        )?;
    }
    for candidate in candidates {
        let route = out.routes[first_route..].iter_mut().find(|r| {
            r.origin.is_some_and(|(_, e)| e > candidate.entry)
                && r.backends.iter().any(|b| b.cluster == candidate.cluster)
        });
        match route {
            Some(route) => route.overrides.push(OutOverride {
                header: candidate.header,
                value: candidate.value,
                prefix: candidate.prefix,
                backend: candidate.cluster,
            }),
            None => ctx.note(
                vs,
                &format!("spec.http[{}].match", candidate.entry),
                "no weighted route after it has its destination, so it is no override; the \
                 VirtualService keeps it",
            ),
        }
    }
    for (i, entry) in list(vs, &spec, "tls", "spec")?.iter().enumerate() {
        let tls = list(vs, &spec, "tls", "spec")?;
        let name = if tls.len() == 1 {
            vs.name.clone()
        } else {
            format!("{}-{i}", vs.name)
        };
        tls_entry(ctx, vs, index, i, entry, name, out)?;
    }
    Ok(())
}

/// What the `match` list of an `http[]` entry means to the filter.
enum Matches {
    /// Path prefixes (`/` when there is no match).
    Prefixes(Vec<String>),
    /// Header conditions alone: (header, exact value or prefix), one per match entry.
    Headers(Vec<(String, Option<String>, Option<String>)>),
    /// Something the filter cannot match on: (field, why).
    Other(String, String),
}

fn matches(vs: &Resource, entry: &Value, path: &str) -> Result<Matches, String> {
    let list = list(vs, entry, "match", path)?;
    if list.is_empty() {
        return Ok(Matches::Prefixes(vec!["/".into()]));
    }
    let mut prefixes = Vec::new();
    let mut headers = Vec::new();
    for (j, item) in list.iter().enumerate() {
        let at = format!("{path}.match[{j}]");
        let Some(map) = item.as_object() else {
            return Err(error(vs, &at, "expected an object"));
        };
        if let Some(key) = map
            .keys()
            .find(|k| !["uri", "headers", "name"].contains(&k.as_str()))
        {
            return Ok(Matches::Other(
                format!("{at}.{key}"),
                "the filter matches requests by host, path prefix and override headers only".into(),
            ));
        }
        let prefix = match map.get("uri") {
            None => None,
            Some(uri) => match uri.get("prefix").and_then(Value::as_str) {
                Some(prefix) if uri.as_object().is_some_and(|u| u.len() == 1) => Some(prefix),
                _ => {
                    return Ok(Matches::Other(
                        format!("{at}.uri"),
                        "an exact or regex path: the filter matches by path prefix only".into(),
                    ))
                }
            },
        };
        match map.get("headers").and_then(Value::as_object) {
            None => prefixes.push(prefix.unwrap_or("/").to_string()),
            Some(conditions) if conditions.len() == 1 && prefix.map_or(true, |p| p == "/") => {
                let Some((name, condition)) = conditions.iter().next() else {
                    continue;
                };
                let exact = condition.get("exact").and_then(Value::as_str);
                let starts = condition.get("prefix").and_then(Value::as_str);
                if condition.as_object().map_or(0, |c| c.len()) != 1
                    || (exact.is_none() && starts.is_none())
                {
                    return Ok(Matches::Other(
                        format!("{at}.headers.{name}"),
                        "an override matches a header exactly or by prefix only".into(),
                    ));
                }
                headers.push((
                    name.to_ascii_lowercase(),
                    exact.map(str::to_string),
                    starts.map(str::to_string),
                ));
            }
            Some(_) => {
                return Ok(Matches::Other(
                    format!("{at}.headers"),
                    "several headers, or a header with a path: an override is one header alone"
                        .into(),
                ))
            }
        }
    }
    match (prefixes.is_empty(), headers.is_empty()) {
        (false, true) => Ok(Matches::Prefixes(prefixes)),
        (true, false) => Ok(Matches::Headers(headers)),
        _ => Ok(Matches::Other(
            format!("{path}.match"),
            "path matches and header matches mixed in one entry".into(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn http_entry(
    ctx: &mut Ctx,
    vs: &Resource,
    index: usize,
    entry: &Value,
    path: &str,
    name: &str,
    hosts: &Option<Vec<String>>,
    out: &mut OutConfig,
    candidates: &mut Vec<Candidate>,
) -> Result<(), String> {
    if entry.get("route").is_none() {
        ctx.note(
            vs,
            path,
            "no route (a redirect, directResponse or delegate): the VirtualService keeps it",
        );
        return Ok(());
    }
    let matches = matches(vs, entry, path)?;
    if let Matches::Other(field, why) = &matches {
        ctx.note(
            vs,
            field,
            &format!("{why}; the VirtualService keeps this entry"),
        );
        return Ok(());
    }
    for key in KEPT_BY_THE_VIRTUAL_SERVICE {
        if entry.get(*key).is_some() {
            ctx.note(vs, &format!("{path}.{key}"), KEPT_WHY);
        }
    }
    let backends = destinations(ctx, vs, entry, path)?;
    if let Matches::Headers(headers) = &matches {
        if backends.len() != 1 {
            ctx.note(
                vs,
                &format!("{path}.match"),
                "a header match that splits is no override; the VirtualService keeps this entry",
            );
            return Ok(());
        }
        for (header, value, prefix) in headers {
            candidates.push(Candidate {
                entry: origin_entry(path),
                header: header.clone(),
                value: value.clone(),
                prefix: prefix.clone(),
                cluster: backends[0].cluster.clone(),
            });
        }
        return Ok(());
    }
    let mirrors = mirrors(ctx, vs, entry, path)?;
    let Matches::Prefixes(prefixes) = matches else {
        return Ok(());
    };
    let several = prefixes.len() > 1;
    for (j, prefix) in prefixes.into_iter().enumerate() {
        out.routes.push(OutRoute {
            name: if several {
                format!("{name}-{j}")
            } else {
                name.to_string()
            },
            hosts: hosts.clone(),
            path_prefix: (prefix != "/").then_some(prefix),
            backends: backends
                .iter()
                .map(|b| OutBackend {
                    cluster: b.cluster.clone(),
                    weight: b.weight,
                    tag: None,
                    destination: b.destination.clone(),
                })
                .collect(),
            overrides: Vec::new(),
            mirrors: mirrors
                .iter()
                .map(|m| OutMirror {
                    cluster: m.cluster.clone(),
                    percent: m.percent.clone(),
                })
                .collect(),
            rollout: None,
            origin: Some((index, origin_entry(path))),
        });
    }
    Ok(())
}

/// The entry index of `spec.http[N]`.
fn origin_entry(path: &str) -> usize {
    path.trim_end_matches(']')
        .rsplit('[')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A VirtualService `destination` (`host`, `subset`, `port.number`).
pub fn destination(
    ctx: &Ctx,
    vs: &Resource,
    value: &Value,
    path: &str,
) -> Result<Destination, String> {
    let at = format!("{path}.destination");
    let destination = value
        .get("destination")
        .ok_or_else(|| error(vs, &at, "missing"))?;
    Ok(Destination {
        host: text(vs, destination, "host", &at)?.to_string(),
        subset: destination
            .get("subset")
            .and_then(Value::as_str)
            .map(str::to_string),
        port: port(vs, destination, &at)?,
        namespace: ctx.namespace(vs),
    })
}

/// The weighted destinations of an `http[]` or `tls[]` entry's `route`, with Istio's rule: a
/// lone destination weighs 100, several must sum to 100.
fn destinations(
    ctx: &Ctx,
    vs: &Resource,
    entry: &Value,
    path: &str,
) -> Result<Vec<OutBackend>, String> {
    let route = list(vs, entry, "route", path)?;
    if route.is_empty() {
        return Err(error(
            vs,
            &format!("{path}.route"),
            "expected at least one destination",
        ));
    }
    let mut backends: Vec<OutBackend> = Vec::new();
    for (j, item) in route.iter().enumerate() {
        let at = format!("{path}.route[{j}]");
        let destination = destination(ctx, vs, item, &at)?;
        let cluster = ctx.cluster(vs, &destination, &format!("{at}.destination.port"))?;
        let weight =
            number(vs, item, "weight", &at, 100)?.unwrap_or(if route.len() == 1 { 100 } else { 0 });
        match backends.iter_mut().find(|b| b.cluster == cluster) {
            Some(same) => same.weight += weight,
            None => backends.push(OutBackend {
                cluster,
                weight,
                tag: None,
                destination,
            }),
        }
    }
    let sum: u64 = backends.iter().map(|b| b.weight).sum();
    if route.len() > 1 && sum != 100 {
        return Err(error(
            vs,
            &format!("{path}.route"),
            &format!(
                "the weights sum to {sum}; Istio requires a route's destination weights to sum to 100"
            ),
        ));
    }
    Ok(backends)
}

/// `mirror` with `mirrorPercentage.value` (or the older `mirrorPercent`), and `mirrors[]` with
/// their `percentage.value`. Without a percentage Istio mirrors everything.
fn mirrors(ctx: &Ctx, vs: &Resource, entry: &Value, path: &str) -> Result<Vec<OutMirror>, String> {
    let mut found = Vec::new();
    if entry.get("mirror").is_some() {
        let single = serde_json::json!({"destination": entry["mirror"]});
        let destination = destination(ctx, vs, &single, path)?;
        let cluster = ctx.cluster(vs, &destination, &format!("{path}.mirror.port"))?;
        let percent = match (
            entry.pointer("/mirrorPercentage/value"),
            entry.get("mirrorPercent"),
        ) {
            (Some(value), _) => (value, format!("{path}.mirrorPercentage.value")),
            (None, Some(value)) => (value, format!("{path}.mirrorPercent")),
            (None, None) => (&Value::Null, String::new()),
        };
        found.push(OutMirror {
            cluster,
            percent: mirror_percent(vs, percent.0, &percent.1)?,
        });
    }
    for (j, item) in list(vs, entry, "mirrors", path)?.iter().enumerate() {
        let at = format!("{path}.mirrors[{j}]");
        let destination = destination(ctx, vs, item, &at)?;
        let cluster = ctx.cluster(vs, &destination, &format!("{at}.destination.port"))?;
        let percent = item.pointer("/percentage/value").unwrap_or(&Value::Null);
        found.push(OutMirror {
            cluster,
            percent: mirror_percent(vs, percent, &format!("{at}.percentage.value"))?,
        });
    }
    Ok(found)
}

fn mirror_percent(vs: &Resource, value: &Value, field: &str) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::from(100));
    }
    value.as_f64().and_then(percent_value).ok_or_else(|| {
        error(
            vs,
            field,
            &format!("expected a percentage 0..=100 with at most 4 decimals, got {value}"),
        )
    })
}

fn tls_entry(
    ctx: &mut Ctx,
    vs: &Resource,
    index: usize,
    i: usize,
    entry: &Value,
    name: String,
    out: &mut OutConfig,
) -> Result<(), String> {
    let path = format!("spec.tls[{i}]");
    let mut sni_hosts = Vec::new();
    for (j, item) in list(vs, entry, "match", &path)?.iter().enumerate() {
        let at = format!("{path}.match[{j}]");
        for key in item.as_object().into_iter().flat_map(|m| m.keys()) {
            if key != "sniHosts" {
                ctx.note(
                    vs,
                    &format!("{at}.{key}"),
                    "the network filter matches by SNI only; the VirtualService keeps the rest",
                );
            }
        }
        for (k, host) in list(vs, item, "sniHosts", &at)?.iter().enumerate() {
            let host = host
                .as_str()
                .ok_or_else(|| error(vs, &format!("{at}.sniHosts[{k}]"), "expected a string"))?;
            if !sni_hosts.iter().any(|h| h == host) {
                sni_hosts.push(host.to_string());
            }
        }
    }
    if sni_hosts.is_empty() {
        return Err(error(
            vs,
            &format!("{path}.match"),
            "a tls route needs sniHosts (Istio requires them)",
        ));
    }
    let backends = destinations(ctx, vs, entry, &path)?;
    out.tcp_routes.push(OutTcpRoute {
        name,
        sni_hosts: Some(sni_hosts),
        backends: backends
            .into_iter()
            .map(|b| OutTcpBackend {
                cluster: b.cluster,
                weight: b.weight,
            })
            .collect(),
        origin: Some((index, i)),
    });
    Ok(())
}
