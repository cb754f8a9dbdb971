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

/// Boxed so that each `?` moves one pointer, not a path and a message (−2.2 KB of module).
pub type Decoded<T> = Result<T, Box<DecodeError>>;

/// Where a value is: borrowed steps back to the document's root. Reading a valid configuration
/// builds no owned path; one is made only for an error.
#[derive(Clone, Copy)]
pub struct At<'a> {
    parent: Option<&'a At<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    pub const ROOT: At<'static> = At {
        parent: None,
        step: Step::Root,
    };

    pub fn key(&'a self, key: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            step: Step::Key(key),
        }
    }

    pub fn index(&'a self, index: usize) -> At<'a> {
        At {
            parent: Some(self),
            step: Step::Index(index),
        }
    }

    fn path(&self) -> Path {
        let mut path = Vec::new();
        let mut at = Some(self);
        while let Some(here) = at {
            match here.step {
                Step::Root => {}
                Step::Key(key) => path.push(Seg::Key(key.to_string())),
                Step::Index(index) => path.push(Seg::Index(index)),
            }
            at = here.parent;
        }
        path.reverse();
        path
    }
}

pub fn error(at: &At, message: String) -> Box<DecodeError> {
    Box::new(DecodeError {
        path: at.path(),
        message,
    })
}

fn wrong_type(value: &Json, at: &At, expected: &str) -> Box<DecodeError> {
    error(at, format!("expected {expected}, got {}", value.describe()))
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
    at: At<'a>,
}

impl<'a> Fields<'a> {
    pub fn of(value: &'a Json, at: &At<'a>, known: &[&str], expected: &str) -> Decoded<Self> {
        let Json::Object(entries) = value else {
            return Err(wrong_type(value, at, expected));
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            if !known.contains(&key.as_str()) {
                let message = format!(
                    "unknown field `{key}`; expected one of: {}",
                    comma_separated(known)
                );
                return Err(error(&at.key(key), message));
            }
            if entries[..i].iter().any(|(earlier, _)| earlier == key) {
                return Err(error(&at.key(key), format!("duplicate field `{key}`")));
            }
        }
        Ok(Fields { entries, at: *at })
    }

    /// The value of `key`, if present (`null` counts as absent).
    fn get(&self, key: &str) -> Option<&'a Json> {
        self.entries
            .iter()
            .find(|(k, v)| k == key && *v != Json::Null)
            .map(|(_, v)| v)
    }

    /// Decodes `key` with `decode`; an error if it is absent.
    pub fn required<T>(
        &self,
        key: &str,
        decode: impl FnOnce(&Json, &At) -> Decoded<T>,
    ) -> Decoded<T> {
        match self.get(key) {
            Some(value) => decode(value, &self.at.key(key)),
            None => Err(error(&self.at, format!("missing field `{key}`"))),
        }
    }

    /// Decodes `key` with `decode` if present.
    pub fn optional<T>(
        &self,
        key: &str,
        decode: impl FnOnce(&Json, &At) -> Decoded<T>,
    ) -> Decoded<Option<T>> {
        match self.get(key) {
            Some(value) => decode(value, &self.at.key(key)).map(Some),
            None => Ok(None),
        }
    }
}

pub fn string(value: &Json, at: &At) -> Decoded<String> {
    match value {
        Json::String(s) => Ok(s.clone()),
        other => Err(wrong_type(other, at, "a string")),
    }
}

pub fn boolean(value: &Json, at: &At) -> Decoded<bool> {
    match value {
        Json::Bool(b) => Ok(*b),
        other => Err(wrong_type(other, at, "true or false")),
    }
}

/// Each item of an array, decoded with its `[i]` path.
pub fn array<T>(
    value: &Json,
    at: &At,
    mut decode: impl FnMut(&Json, &At) -> Decoded<T>,
) -> Decoded<Vec<T>> {
    let Json::Array(items) = value else {
        return Err(wrong_type(value, at, "an array"));
    };
    // A loop, not `collect::<Result<..>>()`: its adapters cost kilobytes per item type.
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(decode(item, &at.index(i))?);
    }
    Ok(out)
}

pub fn strings(value: &Json, at: &At) -> Decoded<Vec<String>> {
    array(value, at, string)
}

/// An integer `min..=max`. Whole numbers written as decimals or with an exponent (`50.0`,
/// `1.048576e+06`, as Istio's protobuf `Struct` numbers can arrive) are accepted.
pub fn integer(value: &Json, at: &At, min: u64, max: u64) -> Decoded<u64> {
    match value {
        Json::Number(number) => match number.scaled(0) {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(error(
                at,
                format!("expected an integer {min}..={max}, got {}", number.text),
            )),
        },
        other => Err(wrong_type(other, at, &format!("an integer {min}..={max}"))),
    }
}

/// A percentage `0..=100` with at most four decimals, in millionths (100 % = 1,000,000).
pub fn percent(value: &Json, at: &At) -> Decoded<u32> {
    let Json::Number(number) = value else {
        return Err(wrong_type(value, at, "a number 0..=100"));
    };
    match number.scaled(4) {
        Ok(per_million) if per_million <= 1_000_000 => Ok(per_million as u32),
        Err(NotScaled::Fraction) if !number.text.starts_with('-') => Err(error(
            at,
            format!(
                "expected at most 4 decimals (0.0001 % is one request in a million), got {}",
                number.text
            ),
        )),
        _ => Err(error(
            at,
            format!("expected a number 0..=100, got {}", number.text),
        )),
    }
}
