//! Gateway API `HTTPRoute` (rules with `PathPrefix` matches, weighted `backendRefs`, the
//! `RequestMirror` filter) and `TLSRoute` (hostnames as SNI, weighted `backendRefs`).

use super::documents::Resource;
use super::model::{
    percent_value, OutBackend, OutConfig, OutMirror, OutRoute, OutTcpBackend, OutTcpRoute,
};
use super::naming::Destination;
use super::{error, list, number, port, text, Ctx};
use serde_json::Value;

/// Gateway API's largest backend weight.
const MAX_WEIGHT: u64 = 1_000_000;

fn hostnames(resource: &Resource, spec: &Value) -> Result<Option<Vec<String>>, String> {
    let items = list(resource, spec, "hostnames", "spec")?;
    if items.is_empty() {
        return Ok(None);
    }
    items
        .iter()
        .enumerate()
        .map(|(i, h)| {
            h.as_str().map(str::to_string).ok_or_else(|| {
                error(
                    resource,
                    &format!("spec.hostnames[{i}]"),
                    "expected a string",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A `backendRef` (or a mirror's): a Service by `name`, `namespace` and `port`.
fn backend_ref(
    ctx: &Ctx,
    route: &Resource,
    value: &Value,
    at: &str,
) -> Result<Destination, String> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Service");
    let group = value.get("group").and_then(Value::as_str).unwrap_or("");
    if kind != "Service" || !group.is_empty() {
        return Err(error(
            route,
            &format!("{at}.kind"),
            &format!(
                "{group}/{kind}: only Service backends have an Envoy cluster the import can name"
            ),
        ));
    }
    Ok(Destination {
        host: text(route, value, "name", at)?.to_string(),
        subset: None,
        port: port(route, value, at)?,
        namespace: value
            .get("namespace")
            .and_then(Value::as_str)
            .map_or_else(|| ctx.namespace(route), str::to_string),
    })
}

fn backends(
    ctx: &mut Ctx,
    route: &Resource,
    rule: &Value,
    path: &str,
) -> Result<Vec<OutBackend>, String> {
    let refs = list(route, rule, "backendRefs", path)?;
    if refs.is_empty() {
        return Err(error(
            route,
            &format!("{path}.backendRefs"),
            "expected at least one backend",
        ));
    }
    let mut backends: Vec<OutBackend> = Vec::new();
    for (j, item) in refs.iter().enumerate() {
        let at = format!("{path}.backendRefs[{j}]");
        if item.get("filters").is_some() {
            ctx.note(
                route,
                &format!("{at}.filters"),
                "per-backend filters are not a choice of backend; the HTTPRoute keeps them",
            );
        }
        let destination = backend_ref(ctx, route, item, &at)?;
        let cluster = ctx.cluster(route, &destination, &format!("{at}.port"))?;
        let weight = number(route, item, "weight", &at, MAX_WEIGHT)?.unwrap_or(1);
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
    Ok(backends)
}

pub fn import_http(
    ctx: &mut Ctx,
    resources: &[Resource],
    index: usize,
    out: &mut OutConfig,
) -> Result<(), String> {
    let route = &resources[index];
    let spec = route.at("/spec").cloned().unwrap_or(Value::Null);
    let hosts = hostnames(route, &spec)?;
    if spec.get("parentRefs").is_some() {
        ctx.note(route, "spec.parentRefs", "where the filter runs is the WasmPlugin's selector (or the Envoy it is loaded in), not the configuration");
    }
    let rules = list(route, &spec, "rules", "spec")?;
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let name = match rule.get("name").and_then(Value::as_str) {
            Some(name) => format!("{}-{name}", route.name),
            None if rules.len() == 1 => route.name.clone(),
            None => format!("{}-{i}", route.name),
        };
        let Some(prefixes) = prefixes(ctx, route, rule, &path)? else {
            continue;
        };
        if rule.get("timeouts").is_some() {
            ctx.note(
                route,
                &format!("{path}.timeouts"),
                "not a choice of backend: the HTTPRoute keeps it",
            );
        }
        let backends = backends(ctx, route, rule, &path)?;
        let mut mirrors = Vec::new();
        for (j, filter) in list(route, rule, "filters", &path)?.iter().enumerate() {
            let at = format!("{path}.filters[{j}]");
            match filter.get("type").and_then(Value::as_str) {
                Some("RequestMirror") => mirrors.push(mirror(ctx, route, filter, &at)?),
                Some(other) => ctx.note(
                    route,
                    &at,
                    &format!("{other}: not a choice of backend; the HTTPRoute keeps it"),
                ),
                None => return Err(error(route, &format!("{at}.type"), "missing")),
            }
        }
        let several = prefixes.len() > 1;
        for (j, prefix) in prefixes.into_iter().enumerate() {
            out.routes.push(OutRoute {
                name: if several {
                    format!("{name}-{j}")
                } else {
                    name.clone()
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
                    .map(|m: &OutMirror| OutMirror {
                        cluster: m.cluster.clone(),
                        percent: m.percent.clone(),
                    })
                    .collect(),
                rollout: None,
                origin: None,
            });
        }
    }
    Ok(())
}

/// The rule's path prefixes (`/` without matches); `None` (listed) when a match is something
/// else than a path prefix: the HTTPRoute keeps that rule.
fn prefixes(
    ctx: &mut Ctx,
    route: &Resource,
    rule: &Value,
    path: &str,
) -> Result<Option<Vec<String>>, String> {
    let matches = list(route, rule, "matches", path)?;
    if matches.is_empty() {
        return Ok(Some(vec!["/".into()]));
    }
    let mut prefixes = Vec::new();
    for (j, item) in matches.iter().enumerate() {
        let at = format!("{path}.matches[{j}]");
        if let Some(key) = item
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .find(|k| *k != "path")
        {
            ctx.note(route, &format!("{at}.{key}"), "the filter matches requests by host and path prefix only; the HTTPRoute keeps this rule");
            return Ok(None);
        }
        let kind = item
            .pointer("/path/type")
            .and_then(Value::as_str)
            .unwrap_or("PathPrefix");
        let value = item
            .pointer("/path/value")
            .and_then(Value::as_str)
            .unwrap_or("/");
        if kind != "PathPrefix" {
            ctx.note(
                route,
                &format!("{at}.path.type"),
                &format!(
                    "{kind}: the filter matches by path prefix only; the HTTPRoute keeps this rule"
                ),
            );
            return Ok(None);
        }
        if value != "/" && !value.ends_with('/') {
            ctx.note(route, &format!("{at}.path.value"), &format!("PathPrefix {value} matches whole path segments, the filter a byte prefix: {value} also takes {value}x..."));
        }
        prefixes.push(value.to_string());
    }
    Ok(Some(prefixes))
}

/// `RequestMirror` with `percent` or `fraction` (numerator / denominator, default 100); neither
/// mirrors everything.
fn mirror(ctx: &Ctx, route: &Resource, filter: &Value, at: &str) -> Result<OutMirror, String> {
    let at = format!("{at}.requestMirror");
    let spec = filter
        .get("requestMirror")
        .ok_or_else(|| error(route, &at, "missing"))?;
    let target = spec
        .get("backendRef")
        .ok_or_else(|| error(route, &format!("{at}.backendRef"), "missing"))?;
    let destination = backend_ref(ctx, route, target, &format!("{at}.backendRef"))?;
    let cluster = ctx.cluster(route, &destination, &format!("{at}.backendRef.port"))?;
    let percent = match (spec.get("percent"), spec.get("fraction")) {
        (Some(_), Some(_)) => return Err(error(route, &at, "give percent or fraction, not both")),
        (Some(_), None) => number(route, spec, "percent", &at, 100)?.unwrap_or(100) as f64,
        (None, Some(fraction)) => {
            let field = format!("{at}.fraction");
            let numerator =
                number(route, fraction, "numerator", &field, u64::from(u32::MAX))?.unwrap_or(0);
            let denominator =
                number(route, fraction, "denominator", &field, u64::from(u32::MAX))?.unwrap_or(100);
            if denominator == 0 || numerator > denominator {
                return Err(error(
                    route,
                    &field,
                    "expected 0 <= numerator <= denominator, denominator above 0",
                ));
            }
            numerator as f64 * 100.0 / denominator as f64
        }
        (None, None) => 100.0,
    };
    let percent = percent_value((percent * 10_000.0).round() / 10_000.0)
        .ok_or_else(|| error(route, &at, "expected a share 0..=100 %"))?;
    Ok(OutMirror { cluster, percent })
}

pub fn import_tls(
    ctx: &mut Ctx,
    resources: &[Resource],
    index: usize,
    out: &mut OutConfig,
) -> Result<(), String> {
    let route = &resources[index];
    let spec = route.at("/spec").cloned().unwrap_or(Value::Null);
    let sni_hosts = hostnames(route, &spec)?;
    if spec.get("parentRefs").is_some() {
        ctx.note(route, "spec.parentRefs", "where the filter runs is the WasmPlugin's selector (or the Envoy it is loaded in), not the configuration");
    }
    let rules = list(route, &spec, "rules", "spec")?;
    if rules.len() > 1 {
        return Err(error(
            route,
            "spec.rules",
            &format!(
                "{} rules: a TLSRoute rule has no match, so which one a connection takes is not \
                 the resource's to say; give one rule",
                rules.len()
            ),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let backends = backends(ctx, route, rule, &path)?;
        out.tcp_routes.push(OutTcpRoute {
            name: if rules.len() == 1 {
                route.name.clone()
            } else {
                format!("{}-{i}", route.name)
            },
            sni_hosts: sni_hosts.clone(),
            backends: backends
                .into_iter()
                .map(|b| OutTcpBackend {
                    cluster: b.cluster,
                    weight: b.weight,
                })
                .collect(),
            ports: Vec::new(),
            origin: None,
        });
    }
    Ok(())
}
