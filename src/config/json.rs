//! A small JSON parser for the plugin configuration. The filter parses JSON once per
//! configuration, so this trades serde's generality for a module a fraction of the size
//! (see README, "Dependencies"). Numbers keep their source text so messages can quote them.

/// A parsed JSON value. Objects keep their keys in source order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A JSON number, kept as written (`1.048576e+06`): the configuration only needs exact
/// integers and fixed decimals, which [`Number::scaled`] reads without floating point.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    pub text: String,
}

/// Why a number is not a whole count of the requested unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotScaled {
    /// It has more decimals than the unit allows.
    Fraction,
    /// It is negative or does not fit in 64 bits.
    OutOfRange,
}

impl Number {
    /// The value times `10^decimals` as an exact non-negative integer: `"2.5e1"` scaled by 4
    /// is 250,000.
    pub fn scaled(&self, decimals: i32) -> Result<u64, NotScaled> {
        let text = self.text.as_str();
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
}

impl Json {
    /// How a value is described in error messages: `null`, `true`, `-5`, `"abc"`, `an array`.
    pub fn describe(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => n.text.clone(),
            // At most 40 characters of a string (cut at a character boundary).
            Json::String(s) => match s.char_indices().nth(40) {
                Some((cut, _)) => format!("\"{}\"...", s.get(..cut).unwrap_or(s)),
                None => format!("\"{s}\""),
            },
            Json::Array(_) => "an array".into(),
            Json::Object(_) => "an object".into(),
        }
    }
}

/// Nesting deeper than this is refused (the configuration is a few levels deep; this bounds
/// recursion on hostile input).
const MAX_DEPTH: usize = 64;

/// Parses one JSON document (surrounding whitespace allowed). The error gives line and column.
// Out of line: see `Config::from_json` (V8 compile memory).
#[inline(never)]
pub fn parse(text: &[u8]) -> Result<Json, String> {
    let mut parser = Parser { text, at: 0 };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at < text.len() {
        return Err(parser.error("trailing characters after the JSON value"));
    }
    Ok(value)
}

struct Parser<'t> {
    text: &'t [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> String {
        let before = &self.text[..self.at.min(self.text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        format!("{message} at line {line} column {column}")
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn literal(&mut self, word: &[u8], value: Json) -> Result<Json, String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.at += 1;
        let mut entries = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':', "expected `:`")?;
            self.skip_whitespace();
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::Object(entries));
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0x00..=0x1f => {
                    self.at -= 1;
                    return Err(self.error("control character in string"));
                }
                _ => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("string is not valid UTF-8"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let Some(byte) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.at += 1;
        let simple = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode_escape()?;
                let mut buffer = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        self.at += 4;
        Ok(digits)
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) {
            if !self.text[self.at..].starts_with(b"\\u") {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xdc00..0xe000).contains(&second) {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let leading_zero = self.peek() == Some(b'0');
        let integer_digits = self.digits();
        if integer_digits == 0 || (leading_zero && integer_digits > 1) {
            return Err(self.error("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
        Ok(Json::Number(Number { text }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Json {
        Json::Number(Number { text: text.into() })
    }

    #[test]
    fn parses_every_kind_of_value() {
        let value = parse(br#" {"a": [1, -2.5, 1.048576e+06, true, false, null], "b": {"c": "d\n\u00e9\ud83d\ude00"}} "#).unwrap();
        assert_eq!(
            value,
            Json::Object(vec![
                (
                    "a".into(),
                    Json::Array(vec![
                        number("1"),
                        number("-2.5"),
                        number("1.048576e+06"),
                        Json::Bool(true),
                        Json::Bool(false),
                        Json::Null,
                    ])
                ),
                (
                    "b".into(),
                    Json::Object(vec![("c".into(), Json::String("d\né😀".into()))])
                ),
            ])
        );
        assert_eq!(parse(b"[]").unwrap(), Json::Array(vec![]));
        assert_eq!(parse(b"{}").unwrap(), Json::Object(vec![]));
    }

    #[test]
    fn rejects_malformed_input_with_position() {
        let cases: [(&[u8], &str); 13] = [
            (b"", "unexpected end of input"),
            (b"{", "expected a string key"),
            (b"{\"a\" 1}", "expected `:`"),
            (b"{\"a\": 1,}", "expected a string key"),
            (b"[1 2]", "expected `,` or `]`"),
            (b"[1,]", "expected a JSON value"),
            (b"01", "invalid number"),
            (b"1.", "invalid number"),
            (b"-", "invalid number"),
            (b"NaN", "expected a JSON value"),
            (b"\"\\x\"", "invalid escape"),
            (b"\"\\ud800\"", "unpaired surrogate"),
            (b"{} x", "trailing characters"),
        ];
        for (text, expected) in cases {
            let message = parse(text).unwrap_err();
            assert!(
                message.starts_with(expected),
                "{:?}: {message}",
                String::from_utf8_lossy(text)
            );
            assert!(message.contains(" at line "), "{message}");
        }
        assert_eq!(
            parse(b"{\n  \"a\": x}").unwrap_err(),
            "expected a JSON value at line 2 column 8"
        );
        assert!(parse(b"\"a\x01\"")
            .unwrap_err()
            .starts_with("control character"));
        assert!(parse(b"\"\xff\"")
            .unwrap_err()
            .starts_with("string is not valid UTF-8"));
    }

    fn scaled(text: &str, decimals: i32) -> Result<u64, NotScaled> {
        Number { text: text.into() }.scaled(decimals)
    }

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

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .starts_with("nesting too deep"));
        let ok = format!("{}{}", "[".repeat(60), "]".repeat(60));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn describes_values_for_messages() {
        assert_eq!(parse(b"-5").unwrap().describe(), "-5");
        assert_eq!(parse(b"\"x\"").unwrap().describe(), "\"x\"");
        assert_eq!(parse(b"{}").unwrap().describe(), "an object");
        let long = format!("\"{}\"", "y".repeat(100));
        assert!(parse(long.as_bytes())
            .unwrap()
            .describe()
            .ends_with("\"..."));
    }
}
