//! Configuration errors that name the place: `route "httpbin": backends[1].weight: ...`.

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_path_to_error::Segment;
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

/// `tcp_route "NAME"`, or `tcp_routes[i]` when the name is not known yet.
pub fn tcp_route_label(name: Option<&str>, index: usize) -> String {
    match name {
        Some(name) => format!("tcp_route \"{name}\""),
        None => format!("tcp_routes[{index}]"),
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

/// A syntax error: `invalid JSON: ... at line L column C`.
pub fn invalid_json(error: &serde_json::Error) -> ConfigError {
    ConfigError(format!("invalid JSON: {error}"))
}

/// Turns serde's error at `path` into our format, naming the route by its `name` when the
/// document (`json`, read again only on this error path) gives one.
pub fn from_serde(
    json: &[u8],
    error: serde_path_to_error::Error<serde_json::Error>,
) -> ConfigError {
    let mut path: Vec<Step> = error
        .path()
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return invalid_json(&inner);
    }
    let message = readable(&without_position(&inner));
    // serde reports an unknown or repeated key at its object; we name the key itself.
    if let Some(key) = quoted_key(&message, "unknown field `")
        .or_else(|| quoted_key(&message, "duplicate field `"))
    {
        if path.last() != Some(&Step::Key(key.to_string())) {
            path.push(Step::Key(key.to_string()));
        }
    }
    match path.as_slice() {
        [Step::Key(key), Step::Index(index), rest @ ..] if key == "routes" => {
            let name = route_name_in(json, "routes", *index);
            in_route(
                &route_label(name.as_deref(), *index),
                &render(rest),
                message,
            )
        }
        [Step::Key(key), Step::Index(index), rest @ ..] if key == "tcp_routes" => {
            let name = route_name_in(json, "tcp_routes", *index);
            in_route(
                &tcp_route_label(name.as_deref(), *index),
                &render(rest),
                message,
            )
        }
        [] => ConfigError(message),
        all => ConfigError(format!("{}: {message}", render(all))),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Index(index) => out.push_str(&format!("[{index}]")),
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
        }
    }
    out
}

/// serde_json appends ` at line L column C` to data errors; the field path says more.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_string(),
        None => text,
    }
}

fn quoted_key<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// serde's `invalid type: integer `5`, expected a string` read as `expected a string, got 5`,
/// in the words of JSON (an object, an array, null) rather than of Rust.
fn readable(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    else {
        return message.to_string();
    };
    let Some((got, expected)) = rest.split_once(", expected ") else {
        return message.to_string();
    };
    let got = match got {
        "map" => "an object".to_string(),
        "sequence" => "an array".to_string(),
        "unit value" | "null" => "null".to_string(),
        other => match other.split_once(" `") {
            // integer `5`, floating point `1.5`, boolean `true`
            Some((_, value)) => value.trim_end_matches('`').to_string(),
            // string "abc"
            None => other.strip_prefix("string ").unwrap_or(other).to_string(),
        },
    };
    let expected = match expected {
        "a sequence" => "an array",
        "a boolean" => "true or false",
        other => other,
    };
    format!("expected {expected}, got {got}")
}

/// The `name` of `routes[index]` if the document gives one as a string (the first, if the
/// key is repeated). Reads the document leniently: it is read only to word an error.
fn route_name_in(json: &[u8], list: &str, index: usize) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let names = deserializer.deserialize_any(NamesVisitor { list }).ok()?;
    names.0.into_iter().nth(index).flatten()
}

/// The `name` of each element of the top-level array `list` (`routes`, `tcp_routes`).
struct TopLevel(Vec<Option<String>>);

struct NamesVisitor<'k> {
    list: &'k str,
}

impl<'de> Visitor<'de> for NamesVisitor<'_> {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut routes = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.list && routes.is_none() {
                routes = Some(map.next_value::<Vec<NameOf>>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let names = routes
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.0)
            .collect();
        Ok(TopLevel(names))
    }
}

/// The first `name` of a route object, if it is a string; `None` for anything else. Read
/// without `serde_json::Value`, whose objects keep the last of repeated keys.
struct NameOf(Option<String>);

impl<'de> Deserialize<'de> for NameOf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyValue { in_route: true })
    }
}

/// Reads any JSON value; keeps a string, or (`in_route`) the first string `name` of an object.
struct AnyValue {
    in_route: bool,
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = NameOf;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NameOf, A::Error> {
        let mut name = None;
        while let Some(key) = map.next_key::<String>()? {
            if self.in_route && key == "name" && name.is_none() {
                name = Some(map.next_value_seed(AnyValue { in_route: false })?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(NameOf(name.flatten()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NameOf, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(NameOf(None))
    }

    fn visit_str<E>(self, value: &str) -> Result<NameOf, E> {
        Ok(NameOf((!self.in_route).then(|| value.to_string())))
    }

    fn visit_unit<E>(self) -> Result<NameOf, E> {
        Ok(NameOf(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<NameOf, E> {
        Ok(NameOf(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<NameOf, E> {
        Ok(NameOf(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<NameOf, E> {
        Ok(NameOf(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<NameOf, E> {
        Ok(NameOf(None))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for AnyValue {
    type Value = NameOf;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<NameOf, D::Error> {
        deserializer.deserialize_any(self)
    }
}
