//! Argo Rollouts `Rollout` (argoproj.io/v1alpha1): the canary `steps` become a `rollout` on the
//! routes imported from the VirtualService(s) its `trafficRouting.istio` names: `setWeight` is a
//! step's weight, `pause: {duration}` its `hold_s`, `pause: {}` a step held until promoted.

use super::documents::Resource;
use super::model::{OutConfig, OutRollout, OutStep};
use super::naming::Destination;
use super::{error, list, number, Ctx};
use serde_json::Value;

const CANARY: &str = "spec.strategy.canary";

pub fn import(
    ctx: &mut Ctx,
    resources: &[Resource],
    index: usize,
    out: &mut OutConfig,
) -> Result<(), String> {
    let rollout = &resources[index];
    let canary = rollout
        .at("/spec/strategy/canary")
        .cloned()
        .ok_or_else(|| {
            error(
                rollout,
                CANARY,
                "missing: only the canary strategy has traffic steps (blueGreen switches services)",
            )
        })?;
    let routing = canary.get("trafficRouting").ok_or_else(|| {
        error(
            rollout,
            &format!("{CANARY}.trafficRouting"),
            "missing: without it Argo splits by replica count, which no proxy routes",
        )
    })?;
    let istio = match routing.get("istio") {
        Some(istio) => istio,
        None => {
            return Err(error(
                rollout,
                &format!("{CANARY}.trafficRouting"),
                "only trafficRouting.istio is imported (its VirtualService holds the routes)",
            ))
        }
    };
    for key in ["analysis", "antiAffinity"] {
        if canary.get(key).is_some() {
            ctx.note(
                rollout,
                &format!("{CANARY}.{key}"),
                "Argo's controller runs it; the filter's closest equivalent is a route's `guard`",
            );
        }
    }
    let steps = steps(ctx, rollout, &canary)?;
    let namespace = ctx.namespace(rollout);
    let subsets = istio.get("destinationRule").map(|rule| {
        (
            rule.get("canarySubsetName")
                .and_then(Value::as_str)
                .map(str::to_string),
            rule.get("stableSubsetName")
                .and_then(Value::as_str)
                .map(str::to_string),
        )
    });
    let canary_service = canary.get("canaryService").and_then(Value::as_str);
    let is_canary = |destination: &Destination| match &subsets {
        Some((Some(subset), _)) => destination.subset.as_deref() == Some(subset.as_str()),
        _ => canary_service.is_some_and(|service| {
            destination.fqdn()
                == Destination {
                    host: service.to_string(),
                    subset: None,
                    port: None,
                    namespace: namespace.clone(),
                }
                .fqdn()
        }),
    };
    let mut references: Vec<(String, Value)> = Vec::new();
    if let Some(single) = istio.get("virtualService") {
        references.push((
            format!("{CANARY}.trafficRouting.istio.virtualService"),
            single.clone(),
        ));
    }
    for (i, item) in list(
        rollout,
        istio,
        "virtualServices",
        &format!("{CANARY}.trafficRouting.istio"),
    )?
    .iter()
    .enumerate()
    {
        references.push((
            format!("{CANARY}.trafficRouting.istio.virtualServices[{i}]"),
            item.clone(),
        ));
    }
    if references.is_empty() {
        return Err(error(
            rollout,
            &format!("{CANARY}.trafficRouting.istio.virtualService"),
            "missing",
        ));
    }
    let start = ctx.options.start.clone();
    for (at, reference) in references {
        let name = reference
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| error(rollout, &format!("{at}.name"), "missing"))?;
        let short = name.split('.').next().unwrap_or(name);
        let vs_index = resources
            .iter()
            .position(|r| r.kind == "VirtualService" && (r.name == name || r.name == short))
            .ok_or_else(|| {
                error(
                    rollout,
                    &format!("{at}.name"),
                    &format!("VirtualService {name} is not in the input; import it together with the Rollout"),
                )
            })?;
        let vs = &resources[vs_index];
        let http = vs
            .at("/spec/http")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut entries: Vec<usize> = Vec::new();
        let named = list(rollout, &reference, "routes", &at)?;
        // Argo: `routes` may be left out when the VirtualService has a single http route.
        if named.is_empty() {
            match http.len() {
                0 => {}
                1 => entries.push(0),
                n if reference.get("tlsRoutes").is_none() => {
                    return Err(error(
                        rollout,
                        &format!("{at}.routes"),
                        &format!(
                            "missing, and VirtualService {} has {n} http routes: name them",
                            vs.name
                        ),
                    ))
                }
                _ => {}
            }
        }
        for (j, route) in named.iter().enumerate() {
            let route = route.as_str().unwrap_or_default();
            let entry = http
                .iter()
                .position(|e| e.get("name").and_then(Value::as_str) == Some(route))
                .ok_or_else(|| {
                    error(
                        rollout,
                        &format!("{at}.routes[{j}]"),
                        &format!("VirtualService {} has no http route named {route}", vs.name),
                    )
                })?;
            entries.push(entry);
        }
        for entry in entries {
            let mut found = false;
            for route in out
                .routes
                .iter_mut()
                .filter(|r| r.origin == Some((vs_index, entry)))
            {
                found = true;
                let canary = route
                    .backends
                    .iter()
                    .find(|b| is_canary(&b.destination))
                    .map(|b| b.cluster.clone())
                    .ok_or_else(|| {
                        error(
                            rollout,
                            &format!("{CANARY}.canaryService"),
                            &format!("no destination of VirtualService {} spec.http[{entry}] is the canary", vs.name),
                        )
                    })?;
                route.rollout = Some(OutRollout {
                    canary,
                    start: start.clone(),
                    steps: steps.clone(),
                });
            }
            if !found {
                let why = ctx
                    .notes
                    .iter()
                    .find(|n| {
                        n.contains(&format!("VirtualService/{}: spec.http[{entry}]", vs.name))
                    })
                    .cloned()
                    .unwrap_or_default();
                return Err(error(
                    rollout,
                    &at,
                    &format!("the route it names is not imported, so its steps cannot be: {why}"),
                ));
            }
        }
        for (j, tls) in list(rollout, &reference, "tlsRoutes", &at)?
            .iter()
            .enumerate()
        {
            let wanted: Vec<&str> =
                list(rollout, tls, "sniHosts", &format!("{at}.tlsRoutes[{j}]"))?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
            let route = out.tcp_routes.iter().find(|r| {
                r.origin.is_some_and(|(v, _)| v == vs_index)
                    && r.sni_hosts
                        .as_ref()
                        .is_some_and(|hosts| wanted.iter().all(|w| hosts.iter().any(|h| h == w)))
            });
            match route {
                Some(route) => ctx.note(
                    rollout,
                    &format!("{at}.tlsRoutes[{j}]"),
                    &format!(
                        "steps on tcp route \"{}\": this filter version has no rollout on tcp_routes, so its weights stay as the VirtualService sets them",
                        route.name
                    ),
                ),
                None => return Err(error(rollout, &format!("{at}.tlsRoutes[{j}]"), &format!("VirtualService {} has no tls route with these sniHosts", vs.name))),
            }
        }
        if reference.get("tcpRoutes").is_some() {
            ctx.note(
                rollout,
                &format!("{at}.tcpRoutes"),
                "plain TCP routes by port are left to the VirtualService",
            );
        }
    }
    Ok(())
}

/// One step being built: the canary's weight, its hold, and whether a pause set it.
struct Building {
    weight: u64,
    hold_s: Option<u64>,
    paused: bool,
}

fn steps(ctx: &mut Ctx, rollout: &Resource, canary: &Value) -> Result<Vec<OutStep>, String> {
    let items = list(rollout, canary, "steps", CANARY)?;
    if items.is_empty() {
        return Err(error(
            rollout,
            &format!("{CANARY}.steps"),
            "missing: no steps to import",
        ));
    }
    let mut built: Vec<Building> = Vec::new();
    for (i, step) in items.iter().enumerate() {
        let at = format!("{CANARY}.steps[{i}]");
        if let Some(weight) = number(rollout, step, "setWeight", &at, 100)? {
            if let Some(last) = built.last().filter(|l| !l.paused) {
                let dropped = last.weight;
                built.pop();
                ctx.note(rollout, &format!("{CANARY}.steps[{}]", i - 1), &format!("setWeight {dropped} with no pause after it: Argo moves on at once, and a filter step holds at least 1 s"));
            }
            if built.last().is_some_and(|l| l.weight > weight) {
                return Err(error(rollout, &format!("{at}.setWeight"), "below an earlier step's weight: the filter's steps only raise the canary's share"));
            }
            built.push(Building {
                weight,
                hold_s: None,
                paused: false,
            });
        } else if let Some(pause) = step.get("pause") {
            let hold_s = duration(
                rollout,
                pause.get("duration"),
                &format!("{at}.pause.duration"),
            )?;
            match built.last_mut() {
                Some(last) if !last.paused => {
                    last.hold_s = hold_s;
                    last.paused = true;
                }
                last => {
                    let weight = last.map_or(0, |l| l.weight);
                    built.push(Building {
                        weight,
                        hold_s,
                        paused: true,
                    });
                }
            }
        } else {
            let key = step
                .as_object()
                .and_then(|m| m.keys().next())
                .cloned()
                .unwrap_or_default();
            ctx.note(rollout, &format!("{at}.{key}"), "the filter's steps are weights and holds; Argo's controller runs this step, the filter skips it");
        }
    }
    if built.last().map_or(true, |l| l.weight < 100) {
        // After its last step Argo promotes the canary fully.
        built.push(Building {
            weight: 100,
            hold_s: None,
            paused: false,
        });
    }
    Ok(built
        .into_iter()
        .map(|b| OutStep {
            weight: Value::from(b.weight),
            hold_s: b.hold_s,
        })
        .collect())
}

/// A pause's `duration`: seconds as a number or string, or `30s`, `5m`, `1h`; `None` without.
fn duration(rollout: &Resource, value: Option<&Value>, field: &str) -> Result<Option<u64>, String> {
    let bad = || {
        error(
            rollout,
            field,
            "expected seconds (30) or a duration such as 30s, 5m, 1h, at least 1 s",
        )
    };
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad)?,
        Some(Value::String(s)) => {
            let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                Some((at, _)) => s.split_at(at),
                None => (s.as_str(), "s"),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            match unit {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3600,
                _ => return Err(bad()),
            }
        }
        Some(_) => return Err(bad()),
    };
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Some(seconds))
}
