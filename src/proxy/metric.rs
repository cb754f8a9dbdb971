//! Stats defined on first use: most route × cluster × reason series never happen at gateway
//! scale, and a defined stat costs the proxy memory on every worker. The one helper for it;
//! a definition the proxy refuses becomes a no-op stat, never asked for again, never a panic.

use super::{MetricKind, Proxy};
use std::cell::Cell;

/// Defines `name`, or `None` (logged) if the proxy refuses.
pub fn define(proxy: &impl Proxy, kind: MetricKind, name: &str) -> Option<u32> {
    match proxy.define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(refused) => {
            log::warn!("split-mirror: cannot define metric {name}: {refused}");
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Slot {
    #[default]
    Undefined,
    Defined(u32),
    Refused,
}

/// One stat of a worker: not defined yet, defined (the proxy's id), or refused.
#[derive(Debug, Clone, Default)]
pub struct LazyMetric(Cell<Slot>);

impl LazyMetric {
    /// The proxy's id; on first use `define` is called (`None`: refused), and never again.
    pub fn id(&self, define: impl FnOnce() -> Option<u32>) -> Option<u32> {
        match self.0.get() {
            Slot::Defined(id) => Some(id),
            Slot::Refused => None,
            Slot::Undefined => {
                let id = define();
                self.0.set(id.map_or(Slot::Refused, Slot::Defined));
                id
            }
        }
    }

    /// Adds `delta` to the stat `name` (built only on first use) of `kind`.
    pub fn add(
        &self,
        proxy: &impl Proxy,
        kind: MetricKind,
        delta: i64,
        name: impl FnOnce() -> String,
    ) {
        if let Some(id) = self.id(|| define(proxy, kind, &name())) {
            proxy.add_metric(id, delta);
        }
    }

    /// Sets the gauge `name` (built only on first use).
    pub fn record(&self, proxy: &impl Proxy, value: u64, name: impl FnOnce() -> String) {
        if let Some(id) = self.id(|| define(proxy, MetricKind::Gauge, &name())) {
            proxy.record_metric(id, value);
        }
    }
}
