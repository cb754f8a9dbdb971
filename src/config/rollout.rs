//! Compiling a route's `rollout` section: the canary, the steps' times and weight tables, the
//! guard, and the fingerprint that keys an abort in the host's shared data.

use super::error::in_route;
use super::raw::{RawGuard, RawRollout, RawStep};
use super::values::Object;
use super::{Backend, ConfigError};
use crate::hash::fnv1a64;
use crate::rollout::cusum::Test;
use crate::rollout::guard::{Guard, LatencyGuard};
use crate::rollout::time::parse_rfc3339;
use crate::rollout::{decimal, step_weights, Rollout, Step, FULL_SHARE};
use crate::weights::WeightTable;

/// A step's weight is read in millionths of a percent (as mirrors' `percent`); steps allow two
/// decimals, so it must be a whole number of hundredths.
const MILLIONTHS_PER_HUNDREDTH: u32 = 100;

// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
pub(super) fn compile(
    raw: RawRollout,
    backends: &[Backend],
    route_name: &str,
    label: &str,
) -> Result<Rollout, ConfigError> {
    let bare = "give `steps` (with `start`), a `guard`, or both; a canary alone does nothing";
    compile_schedule(raw, backends, (route_name, label), Some(bare))
}

/// The canary, the steps' times and tables, and the guard of a rollout (HTTP, or TCP without
/// a guard). `bare`: why a rollout with neither steps nor guard is refused (`None`: it is not).
pub(super) fn compile_schedule(
    raw: RawRollout,
    backends: &[Backend],
    (route_name, label): (&str, &str),
    bare: Option<&str>,
) -> Result<Rollout, ConfigError> {
    let error =
        |field: &str, message: String| in_route(label, &format!("rollout.{field}"), message);
    let canary = backends
        .iter()
        .position(|b| b.cluster == raw.canary)
        .ok_or_else(|| {
            error(
                "canary",
                format!(
                    "\"{}\" is not the cluster of one of this route's backends",
                    raw.canary
                ),
            )
        })?;
    if backends.len() < 2 {
        return Err(error(
            "canary",
            "the route needs another backend to take the traffic the canary does not".into(),
        ));
    }
    // The canary last: sticky hashing is monotone in the last entry's weight.
    let order: Vec<usize> = (0..backends.len())
        .filter(|&i| i != canary)
        .chain([canary])
        .collect();
    let weight_of = |i: usize| backends.get(i).map_or(0, |b| b.weight);
    let others: Vec<u32> = order[..order.len() - 1]
        .iter()
        .map(|&i| weight_of(i))
        .collect();
    let configured_weights: Vec<u32> = order.iter().map(|&i| weight_of(i)).collect();
    let table_of = |weights: &[u64], field: &str| {
        WeightTable::from_wide(weights).ok_or_else(|| {
            error(
                field,
                "the weights sum to 0; give a backend a weight above 0".into(),
            )
        })
    };
    let configured_wide: Vec<u64> = configured_weights.iter().map(|&w| u64::from(w)).collect();
    let configured = table_of(&configured_wide, "canary")?;
    let configured_share = share_of_last(&configured);
    let aborted = table_of(&step_weights(&others, 0), "canary")?;

    let start_ms = match (&raw.start, &raw.steps) {
        (Some(start), Some(_)) => Some(parse_rfc3339(start).map_err(|m| error("start", m))?),
        (None, Some(_)) => {
            return Err(error(
                "start",
                "required with `steps`: the RFC 3339 time step 1 begins".into(),
            ))
        }
        (Some(_), None) => {
            return Err(error(
                "start",
                "has no effect without `steps`; remove it or add steps".into(),
            ))
        }
        (None, None) => None,
    };
    if let Some(message) = bare.filter(|_| raw.steps.is_none() && raw.guard.is_none()) {
        return Err(in_route(label, "rollout", message));
    }
    let raw_steps = raw.steps.unwrap_or_default();
    if start_ms.is_some() && raw_steps.is_empty() {
        return Err(error(
            "steps",
            "expected at least one step, got an empty list".into(),
        ));
    }
    let mut steps: Vec<Step> = Vec::with_capacity(raw_steps.len());
    let mut begins_ms = start_ms;
    for (i, Object(RawStep { weight, hold_s })) in raw_steps.into_iter().enumerate() {
        let field = format!("steps[{i}].weight");
        if weight.0 % MILLIONTHS_PER_HUNDREDTH != 0 {
            return Err(error(
                &field,
                format!(
                    "expected at most 2 decimals, got {}",
                    decimal(u64::from(weight.0), 4)
                ),
            ));
        }
        let share = weight.0 / MILLIONTHS_PER_HUNDREDTH;
        if let Some(previous) = steps.last().filter(|p| p.share > share) {
            return Err(error(
                &field,
                format!(
                    "{} is below the previous step's {}: steps may only raise the canary's share",
                    percent(share),
                    percent(previous.share)
                ),
            ));
        }
        let hold_ms = hold_s.map(|h| (h.0 as i64) * 1000);
        steps.push(Step {
            share,
            hold_ms,
            begins_ms,
            table: table_of(&step_weights(&others, share), &field)?,
        });
        begins_ms = match (begins_ms, hold_ms) {
            (Some(begins), Some(hold)) => Some(begins.saturating_add(hold)),
            _ => None,
        };
    }
    let guard = match raw.guard {
        Some(Object(guard)) => {
            Some(compile_guard(guard).map_err(|m| error("guard.max_slow_rate", m))?)
        }
        None => None,
    };
    let fingerprint =
        fnv1a64(canonical(route_name, &raw.canary, start_ms, &steps, guard.as_ref()).as_bytes());
    Ok(Rollout {
        canary,
        order,
        start_ms,
        steps,
        configured,
        configured_share,
        aborted,
        guard,
        fingerprint,
    })
}

/// The sensitivity and false-abort target when the configuration does not say.
pub const DEFAULT_SENSITIVITY: f64 = 2.0;
pub const DEFAULT_FALSE_ABORT_RATE: f64 = 0.01;
pub const DEFAULT_MAX_SLOW_RATE: f64 = 0.01;

fn compile_guard(raw: RawGuard) -> Result<Guard, String> {
    let sensitivity = raw.sensitivity.map_or(DEFAULT_SENSITIVITY, |s| s.0);
    let false_abort_rate = raw
        .false_abort_rate
        .map_or(DEFAULT_FALSE_ABORT_RATE, |r| r.0);
    let latency = match (raw.max_latency_ms, raw.max_slow_rate) {
        (None, Some(_)) => {
            return Err("has no effect without `max_latency_ms`; add it or remove this".into())
        }
        (None, None) => None,
        (Some(ms), rate) => {
            let max_slow_rate = rate.map_or(DEFAULT_MAX_SLOW_RATE, |r| r.0);
            Some(LatencyGuard {
                // At most 600,000: the cast cannot truncate.
                max_latency_ms: ms.0 as u32,
                max_slow_rate,
                max_slow_rate_millionths: millionths(max_slow_rate),
                test: Test::new(max_slow_rate, sensitivity, false_abort_rate),
            })
        }
    };
    Ok(Guard {
        max_error_rate: raw.max_error_rate.0,
        max_error_rate_millionths: millionths(raw.max_error_rate.0),
        min_requests: raw.min_requests.0,
        // At most 3600: the cast cannot truncate.
        window_s: raw.window_s.0 as u32,
        sensitivity,
        false_abort_rate,
        errors: Test::new(raw.max_error_rate.0, sensitivity, false_abort_rate),
        latency,
    })
}

/// A share in 0..=1 in millionths (the cast cannot overflow).
fn millionths(share: f64) -> u64 {
    (share * 1e6).round() as u64
}

/// The last entry's share of a table, in hundredths of a percent.
fn share_of_last(table: &WeightTable) -> u32 {
    let cumulative = table.cumulative();
    let last = match cumulative {
        [.., before, last] => last - before,
        [only] => *only,
        [] => 0,
    };
    let total = table.total().max(1);
    ((u128::from(last) * u128::from(FULL_SHARE)) / u128::from(total)) as u32
}

/// `40.5` from 4050 hundredths.
fn percent(hundredths: u32) -> String {
    let whole = hundredths / 100;
    match hundredths % 100 {
        0 => format!("{whole}"),
        part if part % 10 == 0 => format!("{whole}.{}", part / 10),
        part => format!("{whole}.{part:02}"),
    }
}

/// The section's content in one canonical text (times in epoch ms, weights in hundredths), so
/// that writing the same rollout differently (an offset instead of `Z`, `20.0` for `20`) keeps
/// its fingerprint, and any change of meaning changes it.
fn canonical(
    route: &str,
    canary: &str,
    start_ms: Option<i64>,
    steps: &[Step],
    guard: Option<&Guard>,
) -> String {
    let mut text = format!("route={route};canary={canary};start={start_ms:?};steps=");
    for step in steps {
        text.push_str(&format!("{}/{:?},", step.share, step.hold_ms));
    }
    if let Some(guard) = guard {
        text.push_str(&format!(
            ";guard={}/{}/{}/{}/{}",
            guard.max_error_rate.to_bits(),
            guard.min_requests,
            guard.window_s,
            guard.sensitivity.to_bits(),
            guard.false_abort_rate.to_bits(),
        ));
        if let Some(latency) = &guard.latency {
            text.push_str(&format!(
                ";latency={}/{}",
                latency.max_latency_ms,
                latency.max_slow_rate.to_bits()
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use serde_json::{json, Value};

    fn route(rollout: Value) -> Value {
        json!({"routes": [{"name": "r", "backends": [
            {"cluster": "stable", "weight": 100}, {"cluster": "canary", "weight": 0}],
            "rollout": rollout}]})
    }

    fn error_of(rollout: Value) -> String {
        Config::from_json(route(rollout).to_string().as_bytes())
            .unwrap_err()
            .0
    }

    fn fingerprint_of(rollout: Value) -> u64 {
        let config = Config::from_json(route(rollout).to_string().as_bytes()).unwrap();
        config.routes[0].rollout.as_ref().unwrap().fingerprint
    }

    const START: &str = "2026-12-01T10:00:00Z";

    #[test]
    fn errors_name_the_field() {
        for (rollout, expected) in [
            (
                json!({"canary": "canary"}),
                "route \"r\": rollout: give `steps` (with `start`), a `guard`, or both; a canary alone does nothing",
            ),
            (
                json!({"canary": "nope"}),
                "route \"r\": rollout.canary: \"nope\" is not the cluster of one of this route's backends",
            ),
            (
                json!({"canary": "canary", "steps": [{"weight": 20}]}),
                "route \"r\": rollout.start: required with `steps`: the RFC 3339 time step 1 begins",
            ),
            (
                json!({"canary": "canary", "start": "2026-12-01 10:00", "steps": [{"weight": 20}]}),
                "route \"r\": rollout.start: expected an RFC 3339 time such as \"2026-12-01T10:00:00Z\" or \"2026-12-01T12:00:00+02:00\", got \"2026-12-01 10:00\"",
            ),
            (
                json!({"canary": "canary", "start": START, "steps": [{"weight": 40}, {"weight": 20.5}]}),
                "route \"r\": rollout.steps[1].weight: 20.5 is below the previous step's 40: steps may only raise the canary's share",
            ),
            (
                json!({"canary": "canary", "start": START, "steps": [{"weight": 20, "hold_s": 0}]}),
                "route \"r\": rollout.steps[0].hold_s: expected an integer 1..=31536000, got 0",
            ),
            (
                json!({"canary": "canary", "start": START, "steps": [{"weight": 20, "hold_s": 31_536_001}]}),
                "route \"r\": rollout.steps[0].hold_s: expected an integer 1..=31536000, got 31536001",
            ),
            (
                json!({"canary": "canary", "start": START, "steps": [{"weight": 20.125}]}),
                "route \"r\": rollout.steps[0].weight: expected at most 2 decimals, got 20.125",
            ),
            (
                json!({"canary": "canary", "start": START, "steps": [{"weight": 101}]}),
                "route \"r\": rollout.steps[0].weight: expected a number 0..=100, got 101",
            ),
            (
                json!({"canary": "canary", "start": START, "steps": []}),
                "route \"r\": rollout.steps: expected at least one step, got an empty list",
            ),
            (
                json!({"canary": "canary", "start": START}),
                "route \"r\": rollout.start: has no effect without `steps`; remove it or add steps",
            ),
            (
                json!({"canary": "canary", "guard": {"max_error_rate": 1.5, "min_requests": 1, "window_s": 30}}),
                "route \"r\": rollout.guard.max_error_rate: expected a number 0..=1, got 1.5",
            ),
            (
                json!({"canary": "canary", "guard": {"max_error_rate": 0.1, "min_requests": 0, "window_s": 30}}),
                "route \"r\": rollout.guard.min_requests: expected an integer 1..=1000000000, got 0",
            ),
            (
                json!({"canary": "canary", "guard": {"max_error_rate": 0.1, "min_requests": 5, "window_s": 3601}}),
                "route \"r\": rollout.guard.window_s: expected an integer 1..=3600, got 3601",
            ),
            (
                json!({"canary": "canary", "guard": {"max_error_rate": 0.1, "min_requests": 5, "window_s": 30, "sensitivity": 1}}),
                "route \"r\": rollout.guard.sensitivity: expected a number 1.5..=10, got 1",
            ),
            (
                json!({"canary": "canary", "guard": {"max_error_rate": 0.1, "min_requests": 5, "window_s": 30, "false_abort_rate": 0}}),
                "route \"r\": rollout.guard.false_abort_rate: expected a number 0.000001..=0.5, got 0",
            ),
            (
                json!({"canary": "canary", "guard": {"max_error_rate": 0.1, "min_requests": 5, "window_s": 30, "max_latency_ms": 0}}),
                "route \"r\": rollout.guard.max_latency_ms: expected an integer 1..=600000, got 0",
            ),
            (
                json!({"canary": "canary", "guard": {"max_error_rate": 0.1, "min_requests": 5, "window_s": 30, "max_slow_rate": 0.05}}),
                "route \"r\": rollout.guard.max_slow_rate: has no effect without `max_latency_ms`; add it or remove this",
            ),
            (
                json!({"canary": "canary", "stpes": []}),
                "route \"r\": rollout.stpes: unknown field `stpes`, expected one of `canary`, `start`, `steps`, `guard`",
            ),
        ] {
            assert_eq!(error_of(rollout.clone()), expected, "{rollout}");
        }
    }

    #[test]
    fn a_lone_canary_is_refused() {
        let config = json!({"routes": [{"name": "r", "backends": [{"cluster": "canary"}],
            "rollout": {"canary": "canary", "guard": {"max_error_rate": 0.1, "min_requests": 5, "window_s": 5}}}]});
        let error = Config::from_json(config.to_string().as_bytes())
            .unwrap_err()
            .0;
        assert!(
            error.starts_with("route \"r\": rollout.canary: the route needs another backend"),
            "{error}"
        );
    }

    #[test]
    fn guard_works_without_steps() {
        let config = Config::from_json(
            route(json!({"canary": "canary", "guard": {"max_error_rate": 0.05, "min_requests": 50, "window_s": 30}}))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let rollout = config.routes[0].rollout.as_ref().unwrap();
        assert!(rollout.steps.is_empty());
        assert_eq!(rollout.guard.as_ref().unwrap().min_requests, 50);
    }

    #[test]
    fn guard_defaults_and_latency() {
        let compile = |guard: Value| {
            let config = Config::from_json(
                route(json!({"canary": "canary", "guard": guard}))
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            config.routes[0]
                .rollout
                .as_ref()
                .unwrap()
                .guard
                .clone()
                .unwrap()
        };
        let plain = compile(json!({"max_error_rate": 0.05, "min_requests": 20, "window_s": 30}));
        assert_eq!((plain.sensitivity, plain.false_abort_rate), (2.0, 0.01));
        assert_eq!(plain.latency, None);
        let explicit = compile(
            json!({"max_error_rate": 0.05, "min_requests": 20, "window_s": 30,
            "sensitivity": 2, "false_abort_rate": 0.01}),
        );
        assert_eq!(plain, explicit);
        let latency = compile(
            json!({"max_error_rate": 0.05, "min_requests": 20, "window_s": 30,
            "max_latency_ms": 250, "sensitivity": 3}),
        );
        let slow = latency.latency.unwrap();
        assert_eq!((slow.max_latency_ms, slow.max_slow_rate), (250, 0.01));
        assert_eq!(slow.test.bad, 0.03);
    }

    #[test]
    fn fingerprint_follows_meaning_not_spelling() {
        let base =
            json!({"canary": "canary", "start": START, "steps": [{"weight": 20, "hold_s": 30}]});
        let respelled = json!({"steps": [{"hold_s": 30.0, "weight": 2e1}], "start": "2026-12-01T11:00:00+01:00", "canary": "canary"});
        assert_eq!(fingerprint_of(base.clone()), fingerprint_of(respelled));
        let later = json!({"canary": "canary", "start": "2026-12-01T10:00:01Z", "steps": [{"weight": 20, "hold_s": 30}]});
        assert_ne!(fingerprint_of(base.clone()), fingerprint_of(later));
        let guarded = json!({"canary": "canary", "start": START, "steps": [{"weight": 20, "hold_s": 30}],
            "guard": {"max_error_rate": 0.05, "min_requests": 50, "window_s": 30}});
        assert_ne!(fingerprint_of(base), fingerprint_of(guarded));
    }
}
