//! Configuration errors that name the place: `route "httpbin": backends[1].weight: ...`.

use super::decode::{DecodeError, Seg};
use super::json::Json;
use std::fmt;

/// One clear message, logged once by `on_configure` before it refuses the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where a route-level error is: the route's name once known, else its index.
pub fn route_label(name: Option<&str>, index: usize) -> String {
    match name {
        Some(name) => format!("route \"{name}\""),
        None => format!("routes[{index}]"),
    }
}

/// An error inside route `label` at `field` (which may be empty).
pub fn in_route(label: &str, field: &str, message: impl fmt::Display) -> ConfigError {
    if field.is_empty() {
        ConfigError(format!("{label}: {message}"))
    } else {
        ConfigError(format!("{label}: {field}: {message}"))
    }
}

/// Turns a decoding error into our format, naming the route by its `name` when the document
/// gives one.
pub fn from_decode(document: &Json, error: DecodeError) -> ConfigError {
    match error.path.as_slice() {
        [Seg::Key(key), Seg::Index(index), rest @ ..] if key == "routes" => {
            let name = route_name_in(document, *index);
            in_route(&route_label(name, *index), &render(rest), error.message)
        }
        [] => ConfigError(error.message),
        all => ConfigError(format!("{}: {}", render(all), error.message)),
    }
}

fn render(segments: &[Seg]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
        }
    }
    out
}

fn route_name_in(document: &Json, index: usize) -> Option<&str> {
    let Json::Object(top) = document else {
        return None;
    };
    let (_, Json::Array(routes)) = top.iter().find(|(k, _)| k == "routes")? else {
        return None;
    };
    let Json::Object(route) = routes.get(index)? else {
        return None;
    };
    match route.iter().find(|(k, _)| k == "name")? {
        (_, Json::String(name)) => Some(name),
        _ => None,
    }
}
