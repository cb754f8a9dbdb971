//! `split-mirror promote` and `resume`: a route's rollout edited in its configuration file
//! (JSON, or a WasmPlugin's `pluginConfig` in YAML), every other byte kept where it can be.
//! The step in force comes from `start` and the clock, as the filter computes it.

use super::json_spans;
use super::yaml_edit;
use crate::config::Config;
use crate::rollout::time::format_rfc3339;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The step in force is done: the next begins now (`full`: the last one does).
    Promote { full: bool },
    /// A new `start` with the steps from the one in force: a new abort key, so an abort ends.
    Resume,
}

/// The edited file and one line per change.
#[derive(Debug)]
pub struct Edited {
    pub text: String,
    pub changes: Vec<String>,
}

/// The route's rollout JSON as the file holds it, for YAML through the WasmPlugin that has it.
fn configuration(file: &str, text: &str, route: &str) -> Result<String, String> {
    let found = crate::check::configurations(file, text)?;
    found
        .into_iter()
        .map(|f| f.json)
        .find(|json| {
            serde_json::from_str::<Value>(json).is_ok_and(|v| route_of(&v, route).is_some())
        })
        .ok_or_else(|| format!("{file}: no route named \"{route}\""))
}

fn route_of<'a>(config: &'a Value, route: &str) -> Option<&'a Value> {
    config
        .get("routes")?
        .as_array()?
        .iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(route))
}

fn share(step: &Value) -> String {
    let weight = step
        .get("weight")
        .map_or(String::new(), ToString::to_string);
    match step.get("hold_s").and_then(Value::as_u64) {
        Some(hold) => format!("{weight} % for {hold} s"),
        None => format!("{weight} %"),
    }
}

pub fn edit(
    file: &str,
    text: &str,
    route: &str,
    action: Action,
    now_ms: i64,
) -> Result<Edited, String> {
    let json = configuration(file, text, route)?;
    let config = Config::from_json(json.as_bytes())
        .map_err(|e| format!("{file}: invalid configuration: {e}"))?;
    let compiled = config
        .routes
        .iter()
        .find(|r| r.name == route)
        .and_then(|r| r.rollout.as_ref())
        .filter(|r| r.start_ms.is_some())
        .ok_or_else(|| format!("{file}: route \"{route}\": rollout.steps: none; promote and resume move a rollout with steps"))?;
    let value: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let steps: Vec<Value> = route_of(&value, route)
        .and_then(|r| r.pointer("/rollout/steps"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let old_start = route_of(&value, route)
        .and_then(|r| r.pointer("/rollout/start"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let total = steps.len();
    let in_force = compiled.span_at(now_ms).step;
    let mut changes = Vec::new();
    let drop = match action {
        Action::Promote { full } => {
            if in_force == total {
                return Err(format!(
                    "{file}: route \"{route}\": already at its last step ({}), nothing to promote",
                    share(&steps[total - 1])
                ));
            }
            let drop = if full { total - 1 } else { in_force };
            if in_force == 0 {
                changes.push(format!(
                    "route \"{route}\": before its start: step 1 begins now"
                ));
            } else {
                changes.push(format!(
                    "route \"{route}\": step {in_force} of {total} ({}) marked done",
                    share(&steps[in_force - 1])
                ));
            }
            drop
        }
        Action::Resume => in_force.saturating_sub(1),
    };
    let mut new_start = format_rfc3339(now_ms - now_ms.rem_euclid(1000));
    if new_start == old_start {
        // The same start would be the same abort key.
        new_start = format_rfc3339(now_ms - now_ms.rem_euclid(1000) + 1000);
    }
    if drop > 0 {
        changes.push(format!(
            "route \"{route}\": steps done dropped: {}",
            steps[..drop]
                .iter()
                .map(share)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    changes.push(format!(
        "route \"{route}\": start {old_start} -> {new_start}"
    ));
    changes.push(format!(
        "route \"{route}\": steps now: {}",
        steps[drop..]
            .iter()
            .map(share)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if action == Action::Resume {
        changes.push(format!("route \"{route}\": a new start is a new abort key: an abort on any proxy ends when it loads this"));
    }
    // A TLS route of the same name with the same start and steps (an imported Rollout's
    // `tlsRoutes`) moves with it: both stay on one clock.
    let twins = tcp_twins(file, text, route, &old_start, &steps);
    if twins > 0 {
        changes.push(format!(
            "tcp_route \"{route}\": moved with it (the same start and steps)"
        ));
    }
    let edited = if file.ends_with(".json") {
        edit_json(text, route, drop, &new_start, &old_start)
    } else {
        edit_yaml(text, route, drop, &new_start, (&old_start, steps.len()))
    }
    .ok_or_else(|| format!("{file}: route \"{route}\": cannot edit rollout.start and rollout.steps in place (write steps as a block list, one item per step); edit them by hand"))?;
    // The edit must be exactly the intended one.
    let after: Value =
        serde_json::from_str(&configuration(file, &edited, route)?).map_err(|e| e.to_string())?;
    let rollout = route_of(&after, route).and_then(|r| r.get("rollout"));
    let expected_steps = Value::Array(steps[drop..].to_vec());
    if rollout.and_then(|r| r.get("steps")) != Some(&expected_steps)
        || rollout.and_then(|r| r.get("start")).and_then(Value::as_str) != Some(new_start.as_str())
    {
        return Err(format!(
            "{file}: route \"{route}\": cannot edit the rollout in place; edit it by hand"
        ));
    }
    Config::from_json(configuration(file, &edited, route)?.as_bytes())
        .map_err(|e| format!("{file}: the edited configuration is invalid: {e}"))?;
    let new_steps = steps[drop..].to_vec();
    if tcp_twins(file, &edited, route, &new_start, &new_steps) != twins {
        return Err(format!(
            "{file}: tcp_route \"{route}\": cannot edit its rollout in place with the route's; edit it by hand"
        ));
    }
    Ok(Edited {
        text: edited,
        changes,
    })
}

/// How many `tcp_routes` named `route` in the file's configurations have a rollout with this
/// `start` and these `steps`.
fn tcp_twins(file: &str, text: &str, route: &str, start: &str, steps: &[Value]) -> usize {
    let found = crate::check::configurations(file, text).unwrap_or_default();
    found
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(&f.json).ok())
        .flat_map(|config| {
            let routes = config.get("tcp_routes").and_then(Value::as_array).cloned();
            routes.unwrap_or_default()
        })
        .filter(|r| r.get("name").and_then(Value::as_str) == Some(route))
        .filter(|r| {
            r.pointer("/rollout/start").and_then(Value::as_str) == Some(start)
                && r.pointer("/rollout/steps")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    == Some(steps)
        })
        .count()
}

fn edit_json(text: &str, route: &str, drop: usize, start: &str, old_start: &str) -> Option<String> {
    let root = json_spans::parse(text)?;
    let config = match root.get("routes") {
        Some(_) => &root,
        None => root.get("pluginConfig")?,
    };
    let named = |list: &str| -> Vec<_> {
        config.get(list).map_or(Vec::new(), |l| {
            l.items()
                .iter()
                .filter(|r| r.get("name").and_then(|n| n.text()) == Some(route))
                .collect()
        })
    };
    let node = named("routes").into_iter().next()?;
    // The route, and a TLS route of the same name on the same clock.
    let twins = named("tcp_routes").into_iter().filter(|r| {
        r.get("rollout")
            .and_then(|o| o.get("start"))
            .and_then(|n| n.text())
            == Some(old_start)
    });
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for node in std::iter::once(node).chain(twins) {
        let rollout = node.get("rollout")?;
        let start_node = rollout.get("start")?;
        let items = rollout.get("steps")?.items();
        edits.push((
            start_node.start,
            start_node.end,
            serde_json::to_string(start).ok()?,
        ));
        if drop > 0 {
            edits.push((items.first()?.start, items.get(drop)?.start, String::new()));
        }
    }
    Some(apply(text, edits))
}

/// The route's rollout lines, and those of items of the same name whose rollout has the same
/// `start` and number of steps (a TLS route on the same clock; checked after the edit).
fn edit_yaml(
    text: &str,
    route: &str,
    drop: usize,
    start: &str,
    (old_start, steps): (&str, usize),
) -> Option<String> {
    let all = yaml_edit::find_all(text, route);
    let (first, rest) = all.split_first()?;
    let twins = rest.iter().filter(|found| {
        yaml_edit::start_value(text, found) == Some(old_start) && found.item_starts.len() == steps
    });
    let mut edits = Vec::new();
    for found in std::iter::once(first).chain(twins) {
        edits.extend(yaml_edits(text, found, drop, start)?);
    }
    Some(apply(text, edits))
}

fn yaml_edits(
    text: &str,
    found: &yaml_edit::Found,
    drop: usize,
    start: &str,
) -> Option<Vec<(usize, usize, String)>> {
    let mut line_starts = vec![0];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let start_line = found.start_line;
    let line = text.get(
        line_starts[start_line]
            ..line_starts
                .get(start_line + 1)
                .map_or(text.len(), |e| e - 1),
    )?;
    let indent = line.len() - line.trim_start().len();
    let mut edits = vec![(
        line_starts[start_line],
        line_starts[start_line] + line.len(),
        format!("{}start: \"{start}\"", " ".repeat(indent)),
    )];
    if drop > 0 {
        let from = line_starts[*found.item_starts.first()?];
        let to = match found.item_starts.get(drop) {
            Some(&l) => line_starts[l],
            None => return None,
        };
        edits.push((from, to, String::new()));
    }
    Some(edits)
}

/// Replaces byte ranges (not overlapping), the last first so earlier offsets hold.
fn apply(text: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|edit| std::cmp::Reverse(edit.0));
    let mut out = text.to_string();
    for (from, to, replacement) in edits {
        out.replace_range(from..to, &replacement);
    }
    out
}
