//! Where a request carries a key (a header or a cookie) and how a value is matched.

/// A request header or a cookie, by name (header names lower-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Header(String),
    Cookie(String),
}

/// How an override compares the value it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Present,
}

impl ValueMatch {
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValueMatch::Exact(expected) => value == expected.as_slice(),
            ValueMatch::Prefix(prefix) => value.starts_with(prefix),
            ValueMatch::Present => true,
        }
    }
}

/// The value of cookie `name` in a `cookie` header (`a=1; b="2"`), quotes removed. The first
/// cookie of that name wins, as in most servers.
pub fn cookie_value<'h>(header: &'h [u8], name: &str) -> Option<&'h [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let equals = pair.iter().position(|&b| b == b'=')?;
        if pair[..equals].trim_ascii() != name.as_bytes() {
            return None;
        }
        let value = pair[equals + 1..].trim_ascii();
        Some(
            value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_are_found_by_exact_name() {
        let header = b"session=abc; canary=1;  user=\"u-7\" ;empty=";
        assert_eq!(cookie_value(header, "canary"), Some(&b"1"[..]));
        assert_eq!(cookie_value(header, "user"), Some(&b"u-7"[..]));
        assert_eq!(cookie_value(header, "empty"), Some(&b""[..]));
        assert_eq!(cookie_value(header, "canar"), None);
        assert_eq!(cookie_value(header, "session"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(b"", "a"), None);
        assert_eq!(cookie_value(b";;;=;a", "a"), None);
        assert_eq!(cookie_value(b"a=1; a=2", "a"), Some(&b"1"[..]));
    }

    #[test]
    fn many_cookies_and_odd_bytes_do_not_break_parsing() {
        let mut header = Vec::new();
        for i in 0..200 {
            header.extend_from_slice(format!("c{i}=v{i}; ").as_bytes());
        }
        header.extend_from_slice(b"bin=\xff\x00\xfe");
        assert_eq!(cookie_value(&header, "c199"), Some(&b"v199"[..]));
        assert_eq!(cookie_value(&header, "bin"), Some(&b"\xff\x00\xfe"[..]));
    }

    #[test]
    fn value_matching() {
        assert!(ValueMatch::Exact(b"always".to_vec()).matches(b"always"));
        assert!(!ValueMatch::Exact(b"always".to_vec()).matches(b"Always"));
        assert!(ValueMatch::Prefix(b"beta-".to_vec()).matches(b"beta-7"));
        assert!(!ValueMatch::Prefix(b"beta-".to_vec()).matches(b"beta"));
        assert!(ValueMatch::Present.matches(b""));
    }
}
