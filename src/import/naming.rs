//! Envoy cluster names for a destination (Istio's `outbound|PORT|SUBSET|FQDN`, or the plain
//! service name) and the host forms a Kubernetes service answers to.

/// How backends and mirrors name their Envoy clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clusters {
    /// `outbound|PORT|SUBSET|FQDN`: the clusters istiod gives every sidecar and gateway.
    Istio,
    /// `service` or `service-subset`, as Envoy users name clusters by hand.
    Plain,
}

/// A destination as the source resource names it, in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The host as the resource wrote it (`reviews`, `reviews.prod.svc.cluster.local`).
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
    /// The namespace short hosts resolve in.
    pub namespace: String,
}

impl Destination {
    /// The fully qualified name, as Istio resolves hosts: a name without a dot is a service
    /// of the namespace, `name.ns.svc` gets the cluster domain; other hosts stay as given.
    pub fn fqdn(&self) -> String {
        let host = self.host.as_str();
        if let Some(base) = host.strip_suffix(".svc") {
            return format!("{base}.svc.cluster.local");
        }
        if host.contains('.') || host.contains('*') {
            return host.to_string();
        }
        format!("{host}.{}.svc.cluster.local", self.namespace)
    }

    /// The service's own name: the first label of a Kubernetes service host, else the host.
    fn service(&self) -> String {
        let fqdn = self.fqdn();
        if fqdn.ends_with(".svc.cluster.local") {
            return fqdn.split('.').next().unwrap_or_default().to_string();
        }
        fqdn
    }

    /// The Envoy cluster name; `None` when Istio's name needs a port nobody gave.
    pub fn cluster(&self, clusters: Clusters, default_port: Option<u16>) -> Option<String> {
        match clusters {
            Clusters::Istio => {
                let port = self.port.or(default_port)?;
                Some(format!(
                    "outbound|{port}|{}|{}",
                    self.subset.as_deref().unwrap_or(""),
                    self.fqdn()
                ))
            }
            Clusters::Plain => Some(match &self.subset {
                Some(subset) => format!("{}-{subset}", self.service()),
                None => self.service(),
            }),
        }
    }
}

/// The hosts a route takes for `host`: the host as given, and when it is a Kubernetes service
/// name also its short (`svc`, `svc.ns`, `svc.ns.svc`) and FQDN forms. `*` is any host (`None`).
pub fn host_forms(host: &str, namespace: &str) -> Option<Vec<String>> {
    if host == "*" {
        return None;
    }
    let mut forms = vec![host.to_string()];
    let destination = Destination {
        host: host.to_string(),
        subset: None,
        port: None,
        namespace: namespace.to_string(),
    };
    let fqdn = destination.fqdn();
    if let Some(base) = fqdn.strip_suffix(".svc.cluster.local") {
        if let Some((service, ns)) = base.split_once('.') {
            if !ns.contains('.') {
                for form in [
                    service.to_string(),
                    format!("{service}.{ns}"),
                    format!("{service}.{ns}.svc"),
                    fqdn.clone(),
                ] {
                    if !forms.contains(&form) {
                        forms.push(form);
                    }
                }
            }
        }
    }
    Some(forms)
}
