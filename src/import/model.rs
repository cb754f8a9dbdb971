//! The configuration an import produces, in the filter's keys (see `config::raw`) and in the
//! order a reader expects them; plus, per backend, the destination it came from (for the
//! header-routing VirtualService).

use super::naming::Destination;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Serialize)]
pub struct OutConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<OutRoute>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp_routes: Vec<OutTcpRoute>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutRoute {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    pub backends: Vec<OutBackend>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<OutOverride>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<OutMirror>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<OutRollout>,
    /// The VirtualService `http[]` entry it came from: (resource index, entry index).
    #[serde(skip)]
    pub origin: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutBackend {
    pub cluster: String,
    pub weight: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip)]
    pub destination: Destination,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutOverride {
    pub header: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub backend: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutMirror {
    pub cluster: String,
    pub percent: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutRollout {
    pub canary: String,
    pub start: String,
    pub steps: Vec<OutStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutStep {
    pub weight: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_s: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutTcpRoute {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni_hosts: Option<Vec<String>>,
    pub backends: Vec<OutTcpBackend>,
    /// The ports its source matched on (a VirtualService `tls[].match[].port`): the NETWORK
    /// WasmPlugin's `match`.
    #[serde(skip)]
    pub ports: Vec<u16>,
    /// The VirtualService `tls[]` entry it came from: (resource index, entry index).
    #[serde(skip)]
    pub origin: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutTcpBackend {
    pub cluster: String,
    pub weight: u64,
}

/// A percentage as the filter reads it: an integer when whole, else at most 4 decimals.
/// `None` when it has more decimals than that or is outside 0..=100.
pub fn percent_value(percent: f64) -> Option<Value> {
    if !(0.0..=100.0).contains(&percent) {
        return None;
    }
    let scaled = (percent * 10_000.0).round();
    if (scaled - percent * 10_000.0).abs() > 1e-6 {
        return None;
    }
    if scaled % 10_000.0 == 0.0 {
        return Some(Value::from((scaled / 10_000.0) as u64));
    }
    serde_json::Number::from_f64(scaled / 10_000.0).map(Value::Number)
}
