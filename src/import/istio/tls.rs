//! VirtualService `tls[]` entries: SNI routes for the network filter (`tcp_routes`).

use super::super::documents::Resource;
use super::super::model::{OutConfig, OutTcpBackend, OutTcpRoute};
use super::super::{error, list, Ctx};
use super::destinations::destinations;
use serde_json::Value;

pub fn tls_entry(
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
    let mut ports = Vec::new();
    for (j, item) in list(vs, entry, "match", &path)?.iter().enumerate() {
        let at = format!("{path}.match[{j}]");
        if let Some(port) = super::super::port(vs, item, &at)? {
            if !ports.contains(&port) {
                ports.push(port);
            }
            ctx.note(
                vs,
                &format!("{at}.port"),
                "the network filter matches by SNI only; the VirtualService keeps the port \
                 (--wasmplugin puts it in the NETWORK WasmPlugin's match)",
            );
        }
        for key in item.as_object().into_iter().flat_map(|m| m.keys()) {
            if key != "sniHosts" && key != "port" {
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
        ports,
        origin: Some((index, i)),
    });
    Ok(())
}
