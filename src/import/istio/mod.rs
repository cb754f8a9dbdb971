//! Istio `VirtualService`: `http[]` entries with weighted destinations become routes (with
//! `uri.prefix`, `mirror`/`mirrorPercentage`, `mirrors[]`), a header match that sends to one
//! destination becomes an override, `tls[]` entries become `tcp_routes`.

mod destinations;
mod matches;
mod tls;

use super::documents::Resource;
use super::model::{OutBackend, OutConfig, OutMirror, OutOverride, OutRoute};
use super::naming::host_forms;
use super::{error, list, Ctx};
use destinations::{destinations, mirrors};
use matches::{matches, Matches};
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
        tls::tls_entry(ctx, vs, index, i, entry, name, out)?;
    }
    Ok(())
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
