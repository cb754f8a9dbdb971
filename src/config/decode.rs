//! Typed reading of the parsed JSON with the path of every value, so each error names its
//! place (`routes[0].backends[1].weight`). Objects accept only the keys their struct knows:
//! a typo is an error, never a silent default.

use super::json::{Json, NotScaled};

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub type Path = Vec<Seg>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub path: Path,
    pub message: String,
}

pub type Decoded<T> = Result<T, DecodeError>;

pub fn error(path: &[Seg], message: impl Into<String>) -> DecodeError {
    DecodeError {
        path: path.to_vec(),
        message: message.into(),
    }
}

pub fn child(path: &[Seg], seg: Seg) -> Path {
    let mut out = Vec::with_capacity(path.len() + 1);
    out.extend_from_slice(path);
    out.push(seg);
    out
}

fn wrong_type(value: &Json, path: &[Seg], expected: &str) -> DecodeError {
    error(
        path,
        format!("expected {expected}, got {}", value.describe()),
    )
}

/// `a, b, c` (what `join` gives, without its generic code in the module).
fn comma_separated(names: &[&str]) -> String {
    let mut out = String::new();
    for name in names {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(name);
    }
    out
}

/// The fields of an object whose keys must all be in `known`.
pub struct Fields<'a> {
    entries: &'a [(String, Json)],
    path: Path,
}

impl<'a> Fields<'a> {
    pub fn of(value: &'a Json, path: &[Seg], known: &[&str], expected: &str) -> Decoded<Self> {
        let Json::Object(entries) = value else {
            return Err(wrong_type(value, path, expected));
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            let key_path = child(path, Seg::Key(key.clone()));
            if !known.contains(&key.as_str()) {
                return Err(error(
                    &key_path,
                    format!(
                        "unknown field `{key}`; expected one of: {}",
                        comma_separated(known)
                    ),
                ));
            }
            if entries[..i].iter().any(|(earlier, _)| earlier == key) {
                return Err(error(&key_path, format!("duplicate field `{key}`")));
            }
        }
        Ok(Fields {
            entries,
            path: path.to_vec(),
        })
    }

    /// The value of `key` and its path, if present (`null` counts as absent).
    pub fn get(&self, key: &str) -> Option<(&'a Json, Path)> {
        self.entries
            .iter()
            .find(|(k, v)| k == key && *v != Json::Null)
            .map(|(k, v)| (v, child(&self.path, Seg::Key(k.clone()))))
    }

    pub fn required(&self, key: &str) -> Decoded<(&'a Json, Path)> {
        self.get(key)
            .ok_or_else(|| error(&self.path, format!("missing field `{key}`")))
    }

    /// Decodes `key` with `decode` if present.
    pub fn optional<T>(
        &self,
        key: &str,
        decode: impl FnOnce(&Json, &[Seg]) -> Decoded<T>,
    ) -> Decoded<Option<T>> {
        self.get(key)
            .map(|(value, path)| decode(value, &path))
            .transpose()
    }
}

pub fn string(value: &Json, path: &[Seg]) -> Decoded<String> {
    match value {
        Json::String(s) => Ok(s.clone()),
        other => Err(wrong_type(other, path, "a string")),
    }
}

pub fn boolean(value: &Json, path: &[Seg]) -> Decoded<bool> {
    match value {
        Json::Bool(b) => Ok(*b),
        other => Err(wrong_type(other, path, "true or false")),
    }
}

/// Each item of an array, decoded with its `[i]` path.
pub fn array<T>(
    value: &Json,
    path: &[Seg],
    mut decode: impl FnMut(&Json, &[Seg]) -> Decoded<T>,
) -> Decoded<Vec<T>> {
    let Json::Array(items) = value else {
        return Err(wrong_type(value, path, "an array"));
    };
    // A loop, not `collect::<Result<..>>()`: its adapters cost kilobytes per item type.
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(decode(item, &child(path, Seg::Index(i)))?);
    }
    Ok(out)
}

pub fn strings(value: &Json, path: &[Seg]) -> Decoded<Vec<String>> {
    array(value, path, string)
}

/// An integer `min..=max`. Whole numbers written as decimals or with an exponent (`50.0`,
/// `1.048576e+06`, as Istio's protobuf `Struct` numbers can arrive) are accepted.
pub fn integer(value: &Json, path: &[Seg], min: u64, max: u64) -> Decoded<u64> {
    match value {
        Json::Number(number) => match number.scaled(0) {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(error(
                path,
                format!("expected an integer {min}..={max}, got {}", number.text),
            )),
        },
        other => Err(wrong_type(
            other,
            path,
            &format!("an integer {min}..={max}"),
        )),
    }
}

/// A percentage `0..=100` with at most four decimals, in millionths (100 % = 1,000,000).
pub fn percent(value: &Json, path: &[Seg]) -> Decoded<u32> {
    let Json::Number(number) = value else {
        return Err(wrong_type(value, path, "a number 0..=100"));
    };
    match number.scaled(4) {
        Ok(per_million) if per_million <= 1_000_000 => Ok(per_million as u32),
        Err(NotScaled::Fraction) if !number.text.starts_with('-') => Err(error(
            path,
            format!(
                "expected at most 4 decimals (0.0001 % is one request in a million), got {}",
                number.text
            ),
        )),
        _ => Err(error(
            path,
            format!("expected a number 0..=100, got {}", number.text),
        )),
    }
}
