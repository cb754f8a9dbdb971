//! Compiling a TCP route's `rollout`: the HTTP rollout's steps and clock without a guard, and
//! `follow`, the HTTP route whose guard's abort also stops new connections to this canary.

use super::error::in_route;
use super::raw::{RawRollout, RawTcpRollout};
use super::rollout::compile_schedule;
use super::{Backend, ConfigError, Route};
use crate::rollout::Rollout;

/// A TCP route's compiled `rollout`.
#[derive(Debug)]
pub struct TcpRollout {
    /// Steps, tables and canary, as an HTTP route's (its `guard` is always `None`).
    pub schedule: Rollout,
    /// The followed HTTP route's name, as configured.
    pub follow_name: Option<String>,
    /// Its index in `Config::routes` (resolved once the HTTP routes are compiled).
    pub follow: Option<usize>,
}

// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
pub(super) fn compile(
    raw: RawTcpRollout,
    clusters: &[String],
    weights: &[u32],
    route_name: &str,
    label: &str,
) -> Result<TcpRollout, ConfigError> {
    let backends: Vec<Backend> = clusters
        .iter()
        .zip(weights)
        .map(|(cluster, &weight)| Backend {
            cluster: cluster.clone(),
            weight,
            tag: None,
        })
        .collect();
    let bare = raw
        .follow
        .is_none()
        .then_some("give `steps` (with `start`), `follow`, or both; a canary alone does nothing");
    let schedule = RawRollout {
        canary: raw.canary,
        start: raw.start,
        steps: raw.steps,
        guard: None,
    };
    Ok(TcpRollout {
        schedule: compile_schedule(schedule, &backends, (route_name, label), bare)?,
        follow_name: raw.follow,
        follow: None,
    })
}

/// Finds each `follow`'s HTTP route, which must exist and have a guard.
pub(super) fn resolve_follows(
    tcp_routes: &mut [super::TcpRoute],
    routes: &[Route],
) -> Result<(), ConfigError> {
    for tcp_route in tcp_routes {
        let label = format!("tcp_route \"{}\"", tcp_route.name);
        let Some(rollout) = tcp_route.rollout.as_mut() else {
            continue;
        };
        let Some(name) = &rollout.follow_name else {
            continue;
        };
        let Some(index) = routes.iter().position(|r| &r.name == name) else {
            return Err(in_route(
                &label,
                "rollout.follow",
                format!("no HTTP route is named \"{name}\" in `routes` of this configuration"),
            ));
        };
        let guarded = routes
            .get(index)
            .and_then(|r| r.rollout.as_ref())
            .is_some_and(|r| r.guard.is_some());
        if !guarded {
            return Err(in_route(
                &label,
                "rollout.follow",
                format!("route \"{name}\" has no rollout guard whose abort could be followed"),
            ));
        }
        rollout.follow = Some(index);
    }
    Ok(())
}
