//! The numbers of the configuration: integers in a range and percentages with up to four
//! decimals, read exactly. Istio hands `pluginConfig` over as a protobuf `Struct`, whose numbers
//! are doubles, so `50.0` and `1.048576e+06` must be read as the integers they are, and `50.5`
//! refused, without floating-point rounding.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An integer `MIN..=MAX`. Whole numbers written as decimals or with an exponent are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let expected = format!("expected an integer {MIN}..={MAX}");
        match &value {
            Value::Number(number) => match scaled(&number.to_string(), 0) {
                Ok(n) if (MIN..=MAX).contains(&n) => Ok(Bounded(n)),
                _ => Err(D::Error::custom(format!("{expected}, got {number}"))),
            },
            other => Err(D::Error::custom(format!(
                "{expected}, got {}",
                describe(other)
            ))),
        }
    }
}

/// A percentage `0..=100` with at most four decimals, in millionths (100 % = 1,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent(pub u32);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Value::Number(number) = &value else {
            return Err(D::Error::custom(format!(
                "expected a number 0..=100, got {}",
                describe(&value)
            )));
        };
        let text = number.to_string();
        match scaled(&text, 4) {
            // At most 1,000,000: the cast cannot truncate.
            Ok(per_million) if per_million <= 1_000_000 => Ok(Percent(per_million as u32)),
            Err(NotScaled::Fraction) if !text.starts_with('-') => Err(D::Error::custom(format!(
                "expected at most 4 decimals (0.0001 % is one request in a million), got {text}"
            ))),
            _ => Err(D::Error::custom(format!(
                "expected a number 0..=100, got {text}"
            ))),
        }
    }
}

/// A number `0..=1` (a share, such as an error rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match value.as_f64() {
            Some(fraction) if (0.0..=1.0).contains(&fraction) => Ok(Fraction(fraction)),
            _ => Err(D::Error::custom(format!(
                "expected a number 0..=1, got {}",
                describe(&value)
            ))),
        }
    }
}

/// A number `MIN..=MAX`, the bounds given in millionths (`Real<1_500_000, 10_000_000>` is
/// 1.5..=10).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Real<const MIN_MILLIONTHS: u64, const MAX_MILLIONTHS: u64>(pub f64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Real<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let (low, high) = (MIN as f64 / 1e6, MAX as f64 / 1e6);
        match value.as_f64() {
            Some(number) if (low..=high).contains(&number) => Ok(Real(number)),
            _ => Err(D::Error::custom(format!(
                "expected a number {}..={}, got {}",
                crate::rollout::decimal(MIN, 6),
                crate::rollout::decimal(MAX, 6),
                describe(&value)
            ))),
        }
    }
}

/// A JSON object read as `T`. serde's derived structs also accept an array of the fields in
/// order (`["x-split", null, null, [...]]`); a configuration written that way is a mistake, so
/// only objects are read (through `deserialize_map`).
#[derive(Debug)]
pub struct Object<T>(pub T);

/// What an object of this type is called in errors: `expected a route object, got 5`.
pub trait Described {
    const EXPECTED: &'static str;
}

impl<'de, T: Deserialize<'de> + Described> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de> + Described> serde::de::Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
    }
}

/// How a value is described in error messages: `null`, `true`, `-5`, `"abc"`, `an array`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // At most 40 characters of a string (cut at a character boundary).
        Value::String(s) => match s.char_indices().nth(40) {
            Some((cut, _)) => format!("\"{}\"...", s.get(..cut).unwrap_or(s)),
            None => format!("\"{s}\""),
        },
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Why a number is not a whole count of the requested unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotScaled {
    /// It has more decimals than the unit allows.
    Fraction,
    /// It is negative or does not fit in 64 bits.
    OutOfRange,
}

/// The decimal number `text` times `10^decimals` as an exact non-negative integer: `"2.5e1"`
/// scaled by 4 is 250,000. serde_json prints a double as the shortest text that reads back as
/// the same double, which is the text the user wrote for any number of up to 15 significant
/// digits: reading that text exactly gives the user's number, not the double's binary value.
pub fn scaled(text: &str, decimals: i32) -> Result<u64, NotScaled> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (
            mantissa,
            exponent.parse::<i32>().map_err(|_| NotScaled::OutOfRange)?,
        ),
        None => (text, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = integer
        .trim_start_matches('-')
        .chars()
        .chain(fraction.chars())
        .collect();
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if integer.starts_with('-') {
        return Err(NotScaled::OutOfRange);
    }
    let shift = i64::from(exponent) + i64::from(decimals) - fraction.len() as i64;
    let kept = if shift >= 0 {
        digits.as_bytes()
    } else {
        let cut = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        let (kept, dropped) = digits.as_bytes().split_at(cut);
        if dropped.iter().any(|&b| b != b'0') {
            return Err(NotScaled::Fraction);
        }
        kept
    };
    let mut value: u64 = 0;
    for &byte in kept {
        if !byte.is_ascii_digit() {
            return Err(NotScaled::OutOfRange);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .ok_or(NotScaled::OutOfRange)?;
    }
    for _ in 0..shift.max(0) {
        value = value.checked_mul(10).ok_or(NotScaled::OutOfRange)?;
    }
    Ok(value)
}

#[cfg(not(target_arch = "wasm32"))]
mod schema {
    use super::{Bounded, Fraction, Percent, Real};
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    impl<const MIN: u64, const MAX: u64> JsonSchema for Bounded<MIN, MAX> {
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> Cow<'static, str> {
            format!("Integer{MIN}To{MAX}").into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
        }
    }

    impl<T: JsonSchema> JsonSchema for super::Object<T> {
        fn inline_schema() -> bool {
            T::inline_schema()
        }

        fn schema_name() -> Cow<'static, str> {
            T::schema_name()
        }

        fn schema_id() -> Cow<'static, str> {
            T::schema_id()
        }

        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            T::json_schema(generator)
        }
    }

    impl JsonSchema for Fraction {
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> Cow<'static, str> {
            "Fraction".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "number", "minimum": 0, "maximum": 1})
        }
    }

    impl<const MIN: u64, const MAX: u64> JsonSchema for Real<MIN, MAX> {
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> Cow<'static, str> {
            format!("Real{MIN}To{MAX}").into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "number", "minimum": MIN as f64 / 1e6, "maximum": MAX as f64 / 1e6})
        }
    }

    impl JsonSchema for Percent {
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> Cow<'static, str> {
            "Percent".into()
        }

        // No `multipleOf: 0.0001`: validators compute it in floating point and refuse 0.1.
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "number", "minimum": 0, "maximum": 100})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_scale_exactly() {
        assert_eq!(scaled("50", 0), Ok(50));
        assert_eq!(scaled("50.0", 0), Ok(50));
        assert_eq!(scaled("1.048576e+06", 0), Ok(1_048_576));
        assert_eq!(scaled("1e6", 0), Ok(1_000_000));
        assert_eq!(scaled("1E-0", 0), Ok(1));
        assert_eq!(scaled("0.0001", 4), Ok(1));
        assert_eq!(scaled("33.3333", 4), Ok(333_333));
        assert_eq!(scaled("2.5e1", 4), Ok(250_000));
        assert_eq!(scaled("-0", 0), Ok(0));
        assert_eq!(scaled("0e-999", 0), Ok(0));
        assert_eq!(scaled("1.5", 0), Err(NotScaled::Fraction));
        assert_eq!(scaled("0.00001", 4), Err(NotScaled::Fraction));
        assert_eq!(scaled("1e-5", 4), Err(NotScaled::Fraction));
        assert_eq!(scaled("1e-1", 0), Err(NotScaled::Fraction));
        assert_eq!(scaled("-5", 0), Err(NotScaled::OutOfRange));
        assert_eq!(scaled("1e999", 0), Err(NotScaled::OutOfRange));
        assert_eq!(
            scaled("18446744073709551616", 0),
            Err(NotScaled::OutOfRange)
        );
        assert_eq!(scaled("18446744073709551615", 0), Ok(u64::MAX));
        assert_eq!(scaled("1e99999999999", 0), Err(NotScaled::OutOfRange));
    }

    /// What serde_json hands over for the numbers users write: the shortest text of the double.
    #[test]
    fn doubles_read_back_as_written() {
        for (written, decimals, expected) in [
            ("1.048576e+06", 0, Ok(1_048_576)),
            ("12.3456", 4, Ok(123_456)),
            ("0.1", 4, Ok(1_000)),
            ("99.9999", 4, Ok(999_999)),
            ("0.3", 4, Ok(3_000)),
            ("50.5", 0, Err(NotScaled::Fraction)),
            ("0.00001", 4, Err(NotScaled::Fraction)),
            ("1e20", 0, Err(NotScaled::OutOfRange)),
        ] {
            let number: Value = serde_json::from_str(written).unwrap();
            assert_eq!(
                scaled(&number.to_string(), decimals),
                expected,
                "{written} printed as {number}"
            );
        }
    }

    #[test]
    fn describes_values_for_messages() {
        assert_eq!(describe(&serde_json::json!(-5)), "-5");
        assert_eq!(describe(&serde_json::json!("x")), "\"x\"");
        assert_eq!(describe(&serde_json::json!({})), "an object");
        assert_eq!(describe(&serde_json::json!([])), "an array");
        assert!(describe(&serde_json::json!("y".repeat(100))).ends_with("\"..."));
    }
}
