//! What the `match` list of a VirtualService `http[]` entry means to the filter: path
//! prefixes, header conditions an override can carry, or something it cannot match on.

use super::super::documents::Resource;
use super::super::{error, list};
use serde_json::Value;

/// What the `match` list of an `http[]` entry means to the filter.
pub enum Matches {
    /// Path prefixes (`/` when there is no match).
    Prefixes(Vec<String>),
    /// Header conditions alone: (header, exact value or prefix), one per match entry.
    Headers(Vec<(String, Option<String>, Option<String>)>),
    /// Something the filter cannot match on: (field, why).
    Other(String, String),
}

pub fn matches(vs: &Resource, entry: &Value, path: &str) -> Result<Matches, String> {
    let list = list(vs, entry, "match", path)?;
    if list.is_empty() {
        return Ok(Matches::Prefixes(vec!["/".into()]));
    }
    let mut prefixes = Vec::new();
    let mut headers = Vec::new();
    for (j, item) in list.iter().enumerate() {
        let at = format!("{path}.match[{j}]");
        let Some(map) = item.as_object() else {
            return Err(error(vs, &at, "expected an object"));
        };
        if let Some(key) = map
            .keys()
            .find(|k| !["uri", "headers", "name"].contains(&k.as_str()))
        {
            return Ok(Matches::Other(
                format!("{at}.{key}"),
                "the filter matches requests by host, path prefix and override headers only".into(),
            ));
        }
        let prefix = match map.get("uri") {
            None => None,
            Some(uri) => match uri.get("prefix").and_then(Value::as_str) {
                Some(prefix) if uri.as_object().is_some_and(|u| u.len() == 1) => Some(prefix),
                _ => {
                    return Ok(Matches::Other(
                        format!("{at}.uri"),
                        "an exact or regex path: the filter matches by path prefix only".into(),
                    ))
                }
            },
        };
        match map.get("headers").and_then(Value::as_object) {
            None => prefixes.push(prefix.unwrap_or("/").to_string()),
            Some(conditions) if conditions.len() == 1 && prefix.map_or(true, |p| p == "/") => {
                let Some((name, condition)) = conditions.iter().next() else {
                    continue;
                };
                let exact = condition.get("exact").and_then(Value::as_str);
                let starts = condition.get("prefix").and_then(Value::as_str);
                if condition.as_object().map_or(0, |c| c.len()) != 1
                    || (exact.is_none() && starts.is_none())
                {
                    return Ok(Matches::Other(
                        format!("{at}.headers.{name}"),
                        "an override matches a header exactly or by prefix only".into(),
                    ));
                }
                headers.push((
                    name.to_ascii_lowercase(),
                    exact.map(str::to_string),
                    starts.map(str::to_string),
                ));
            }
            Some(_) => {
                return Ok(Matches::Other(
                    format!("{at}.headers"),
                    "several headers, or a header with a path: an override is one header alone"
                        .into(),
                ))
            }
        }
    }
    match (prefixes.is_empty(), headers.is_empty()) {
        (false, true) => Ok(Matches::Prefixes(prefixes)),
        (true, false) => Ok(Matches::Headers(headers)),
        _ => Ok(Matches::Other(
            format!("{path}.match"),
            "path matches and header matches mixed in one entry".into(),
        )),
    }
}
