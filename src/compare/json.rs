//! JSON bodies compared as values: object key order does not matter, numbers are equal by
//! value (`1` and `1.0`), `ignore` pointers are removed from both sides first.

use super::{shown, Difference, Place};
use serde_json::Value;

/// An RFC 6901 JSON Pointer whose segment `*` matches any object key or array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Any,
    Name(String),
}

impl Pointer {
    /// `""` is the whole document; otherwise `/a/b~1c/*` (`~1` is `/`, `~0` is `~`).
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "expected a JSON Pointer starting with `/`, got \"{text}\""
            ));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                segments.push(Segment::Any);
                continue;
            }
            let mut name = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    name.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => name.push('~'),
                    Some('1') => name.push('/'),
                    _ => {
                        return Err(format!(
                            "`~` must be followed by 0 or 1 in a JSON Pointer, got \"{text}\""
                        ))
                    }
                }
            }
            segments.push(Segment::Name(name));
        }
        Ok(Pointer(segments))
    }

    /// Removes what this pointer names from `value`. An array element is replaced by `null`
    /// rather than removed, so the indexes after it keep meaning the same elements.
    fn remove_from(&self, value: &mut Value) {
        remove(value, &self.0);
    }
}

fn remove(value: &mut Value, segments: &[Segment]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    match value {
        Value::Object(map) => match first {
            Segment::Any if rest.is_empty() => map.clear(),
            Segment::Any => map.values_mut().for_each(|v| remove(v, rest)),
            Segment::Name(name) if rest.is_empty() => {
                map.remove(name);
            }
            Segment::Name(name) => {
                if let Some(child) = map.get_mut(name) {
                    remove(child, rest);
                }
            }
        },
        Value::Array(items) => {
            let chosen: Vec<&mut Value> = match first {
                Segment::Any => items.iter_mut().collect(),
                Segment::Name(index) => match index.parse::<usize>() {
                    Ok(i) => items.get_mut(i).into_iter().collect(),
                    Err(_) => Vec::new(),
                },
            };
            for item in chosen {
                if rest.is_empty() {
                    *item = Value::Null;
                } else {
                    remove(item, rest);
                }
            }
        }
        _ => {}
    }
}

/// The differing fields of two JSON bodies, or `None` if either is not JSON (the caller then
/// compares bytes).
pub fn differences(primary: &[u8], other: &[u8], ignore: &[Pointer]) -> Option<Vec<Difference>> {
    let mut a: Value = serde_json::from_slice(primary).ok()?;
    let mut b: Value = serde_json::from_slice(other).ok()?;
    for pointer in ignore {
        pointer.remove_from(&mut a);
        pointer.remove_from(&mut b);
    }
    let mut out = Vec::new();
    let mut at = Path::default();
    diff(Some(&a), Some(&b), &mut at, &mut out);
    Some(out)
}

/// The pointer being walked, exact and with array indexes as `*`.
#[derive(Default)]
struct Path {
    exact: String,
    field: String,
}

impl Path {
    fn enter(&mut self, key: &str, is_index: bool) -> (usize, usize) {
        let marks = (self.exact.len(), self.field.len());
        let escaped = key.replace('~', "~0").replace('/', "~1");
        self.exact.push('/');
        self.exact.push_str(&escaped);
        self.field.push('/');
        self.field.push_str(if is_index { "*" } else { &escaped });
        marks
    }

    fn leave(&mut self, (exact, field): (usize, usize)) {
        self.exact.truncate(exact);
        self.field.truncate(field);
    }
}

fn diff(a: Option<&Value>, b: Option<&Value>, at: &mut Path, out: &mut Vec<Difference>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x
                .keys()
                .chain(y.keys().filter(|k| !x.contains_key(*k)))
                .collect();
            keys.sort();
            for key in keys {
                let marks = at.enter(key, false);
                diff(x.get(key), y.get(key), at, out);
                at.leave(marks);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                let marks = at.enter(&i.to_string(), true);
                diff(x.get(i), y.get(i), at, out);
                at.leave(marks);
            }
        }
        (Some(x), Some(y)) if equal_scalars(x, y) => {}
        _ => out.push(Difference {
            place: Place::Field(at.exact.clone()),
            field: Some(at.field.clone()),
            primary: text_of(a),
            other: text_of(b),
        }),
    }
}

/// Numbers by value (`1` equals `1.0`); everything else as JSON values.
fn equal_scalars(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Number(m), Value::Number(n)) => {
            match (m.as_i64(), n.as_i64(), m.as_u64(), n.as_u64()) {
                (Some(i), Some(j), _, _) => i == j,
                (_, _, Some(i), Some(j)) => i == j,
                _ => m.as_f64() == n.as_f64(),
            }
        }
        (Value::Object(_), _)
        | (_, Value::Object(_))
        | (Value::Array(_), _)
        | (_, Value::Array(_)) => false,
        _ => x == y,
    }
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".to_string(),
        Some(value) => shown(value.to_string().as_bytes()),
    }
}
