//! Knative `Service` (serving.knative.dev/v1): `spec.traffic` targets become backends, with
//! their tags reachable at Knative's tag host (`<tag>-<service>.<namespace>.<domain>`).

use super::documents::Resource;
use super::model::{OutBackend, OutConfig, OutRoute};
use super::naming::Destination;
use super::{error, list, number, Ctx};
use serde_json::Value;

/// The port of a revision's Kubernetes Service: Knative serves every revision on port 80.
const REVISION_PORT: u16 = 80;

pub fn import(
    ctx: &mut Ctx,
    resources: &[Resource],
    index: usize,
    out: &mut OutConfig,
) -> Result<(), String> {
    let service = &resources[index];
    let spec = service.at("/spec").cloned().unwrap_or(Value::Null);
    let namespace = ctx.namespace(service);
    let targets = list(service, &spec, "traffic", "spec")?;
    if targets.is_empty() {
        return Err(error(
            service,
            "spec.traffic",
            "missing: without it all traffic goes to the latest revision and there is nothing to split",
        ));
    }
    let mut backends: Vec<OutBackend> = Vec::new();
    let mut sum = 0;
    for (i, target) in targets.iter().enumerate() {
        let at = format!("spec.traffic[{i}]");
        let revision = revision(service, target, &at)?;
        if target.get("url").is_some() {
            ctx.note(
                service,
                &format!("{at}.url"),
                "a status field Knative sets; it routes nothing",
            );
        }
        if target.get("configurationName").is_some() {
            ctx.note(
                service,
                &format!("{at}.configurationName"),
                "Knative's own field; the revision named is used",
            );
        }
        let percent = number(service, target, "percent", &at, 100)?.unwrap_or(0);
        sum += percent;
        let tag = target
            .get("tag")
            .and_then(Value::as_str)
            .map(str::to_string);
        let destination = Destination {
            host: revision.clone(),
            subset: None,
            port: Some(ctx.options.port.unwrap_or(REVISION_PORT)),
            namespace: namespace.clone(),
        };
        let cluster = ctx.cluster(service, &destination, &format!("{at}.revisionName"))?;
        match backends.iter_mut().find(|b| b.cluster == cluster) {
            Some(same) => {
                same.weight += percent;
                match (&same.tag, tag) {
                    (None, tag) => same.tag = tag,
                    (Some(_), Some(tag)) => ctx.note(
                        service,
                        &format!("{at}.tag"),
                        &format!("{tag}: the revision already has a tag, and a backend has one"),
                    ),
                    (Some(_), None) => {}
                }
            }
            None => backends.push(OutBackend {
                cluster,
                weight: percent,
                tag,
                destination,
            }),
        }
    }
    if sum != 100 {
        return Err(error(
            service,
            "spec.traffic",
            &format!("the percents sum to {sum}; Knative requires the traffic targets' percent to sum to 100"),
        ));
    }
    let domain = &ctx.options.domain;
    out.routes.push(OutRoute {
        name: service.name.clone(),
        hosts: Some(vec![
            format!("{}.{namespace}.{domain}", service.name),
            format!("{}.{namespace}.svc.cluster.local", service.name),
        ]),
        path_prefix: None,
        backends,
        overrides: Vec::new(),
        mirrors: Vec::new(),
        rollout: None,
        origin: None,
    });
    Ok(())
}

/// The revision a traffic target names: `revisionName`, or for `latestRevision: true` the
/// latest ready revision from the status, else the template's own name.
fn revision(service: &Resource, target: &Value, at: &str) -> Result<String, String> {
    if let Some(name) = target.get("revisionName").and_then(Value::as_str) {
        return Ok(name.to_string());
    }
    if target.get("latestRevision").and_then(Value::as_bool) != Some(true) {
        return Err(error(
            service,
            &format!("{at}.revisionName"),
            "missing (give revisionName or latestRevision: true)",
        ));
    }
    service
        .at("/status/latestReadyRevisionName")
        .or_else(|| service.at("/spec/template/metadata/name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            error(
                service,
                &format!("{at}.latestRevision"),
                "the latest revision's name is not in the resource: set spec.template.metadata.name, \
                 or import the Service with its status",
            )
        })
}
