//! SMI `TrafficSplit` (v1alpha1 to v1alpha4): requests to `spec.service` split between
//! `spec.backends` by relative weight.

use super::documents::Resource;
use super::model::{OutBackend, OutConfig, OutRoute};
use super::naming::{host_forms, Destination};
use super::{error, list, text, Ctx};
use serde_json::Value;

pub fn import(
    ctx: &mut Ctx,
    resources: &[Resource],
    index: usize,
    out: &mut OutConfig,
) -> Result<(), String> {
    let split = &resources[index];
    let spec = split.at("/spec").cloned().unwrap_or(Value::Null);
    let namespace = ctx.namespace(split);
    let service = text(split, &spec, "service", "spec")?;
    if spec.get("matches").is_some_and(|m| !m.is_null()) {
        return Err(error(
            split,
            "spec.matches",
            "the split applies only to the requests of HTTPRouteGroup/TCPRoute matches, which \
             the filter cannot evaluate; remove `matches` to split every request to the service",
        ));
    }
    let items = list(split, &spec, "backends", "spec")?;
    if items.is_empty() {
        return Err(error(
            split,
            "spec.backends",
            "expected at least one backend",
        ));
    }
    // v1alpha1 weights are Kubernetes quantities ("500m"): read all in thousandths.
    let mut backends = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("spec.backends[{i}]");
        let name = text(split, item, "service", &at)?;
        let weight = milli_weight(item.get("weight")).ok_or_else(|| {
            error(
                split,
                &format!("{at}.weight"),
                "expected a whole number or a quantity such as 500m",
            )
        })?;
        let destination = Destination {
            host: name.to_string(),
            subset: None,
            port: None,
            namespace: namespace.clone(),
        };
        let cluster = ctx.cluster(split, &destination, &format!("{at}.service"))?;
        backends.push(OutBackend {
            cluster,
            weight,
            tag: None,
            destination,
        });
    }
    // Whole weights stay as written; quantities stay in thousandths (750m is 750).
    if items.iter().all(|b| {
        !b.get("weight")
            .and_then(Value::as_str)
            .is_some_and(|w| w.ends_with('m'))
    }) {
        for backend in &mut backends {
            backend.weight /= 1000;
        }
    }
    out.routes.push(OutRoute {
        name: split.name.clone(),
        hosts: host_forms(service, &namespace),
        path_prefix: None,
        backends,
        overrides: Vec::new(),
        mirrors: Vec::new(),
        rollout: None,
        origin: None,
    });
    Ok(())
}

/// A weight in thousandths: `50` or `"50"` is 50000, `"500m"` is 500.
fn milli_weight(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64()?.checked_mul(1000),
        Value::String(s) => match s.strip_suffix('m') {
            Some(milli) => milli.parse().ok(),
            None => s.parse::<u64>().ok()?.checked_mul(1000),
        },
        _ => None,
    }
}
