//! VirtualService destinations: a route's weighted destinations (with Istio's sum rule) and its
//! mirrors, each with its Envoy cluster name.

use super::super::documents::Resource;
use super::super::model::{percent_value, OutBackend, OutMirror};
use super::super::naming::Destination;
use super::super::{error, list, number, port, text, Ctx};
use serde_json::Value;

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
pub fn destinations(
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
pub fn mirrors(
    ctx: &Ctx,
    vs: &Resource,
    entry: &Value,
    path: &str,
) -> Result<Vec<OutMirror>, String> {
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
