//! Host matching against the request's `:authority`: case-insensitive, port ignored, and
//! `*.example.com` wildcards as in Envoy's virtual host `domains`.

/// The host part of an authority: `[::1]:8080` → `[::1]`, `example.com:80` → `example.com`.
/// A value with several colons and no brackets (a bare IPv6 address, or junk like `a:b:c`) is
/// returned whole: there is no port we could tell apart safely.
pub fn host_of(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        return match authority.iter().position(|&b| b == b']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    let mut colons = authority.iter().enumerate().filter(|(_, &b)| b == b':');
    match (colons.next(), colons.next()) {
        (Some((at, _)), None) => &authority[..at],
        _ => authority,
    }
}

/// One entry of a route's `hosts`, compiled: lower-cased, wildcard split off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Matches this host exactly (ASCII case-insensitive).
    Exact(String),
    /// `*.example.com` stored as `.example.com`: matches any non-empty subdomain, not the apex.
    Subdomains(String),
}

/// As written in a configuration (lower-case): `httpbin`, `*.example.com`.
impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Subdomains(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl HostPattern {
    /// Compiles one `hosts` entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let lower = entry.to_ascii_lowercase();
        if lower.is_empty() {
            return Err("expected a host name, got an empty string".into());
        }
        if let Some(domain) = lower.strip_prefix("*.") {
            if domain.is_empty() || domain.as_bytes().contains(&b'*') {
                return Err(format!("expected `*.domain`, got \"{entry}\""));
            }
            return Ok(HostPattern::Subdomains(format!(".{domain}")));
        }
        if lower.as_bytes().contains(&b'*') {
            return Err(format!(
                "only a leading `*.` wildcard is supported, got \"{entry}\""
            ));
        }
        if host_of(lower.as_bytes()).len() != lower.len() {
            return Err(format!(
                "give the host without a port (ports are ignored when matching), got \"{entry}\""
            ));
        }
        Ok(HostPattern::Exact(lower))
    }

    /// `host` is the host part of the authority (see [`host_of`]), in any case.
    pub fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostPattern::Subdomains(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(entry: &str) -> HostPattern {
        HostPattern::parse(entry).unwrap()
    }

    #[test]
    fn port_is_removed() {
        assert_eq!(host_of(b"httpbin:8000"), b"httpbin");
        assert_eq!(host_of(b"httpbin"), b"httpbin");
        assert_eq!(host_of(b"127.0.0.1:80"), b"127.0.0.1");
        assert_eq!(host_of(b"UPPER.Case:0"), b"UPPER.Case");
    }

    #[test]
    fn ipv6_keeps_brackets_and_drops_port() {
        assert_eq!(host_of(b"[::1]:8080"), b"[::1]");
        assert_eq!(host_of(b"[::1]"), b"[::1]");
        assert_eq!(host_of(b"[::1"), b"[::1");
    }

    #[test]
    fn several_colons_without_brackets_stay_whole() {
        assert_eq!(host_of(b"a:b:c"), b"a:b:c");
        assert_eq!(host_of(b"::1"), b"::1");
        assert_eq!(host_of(b""), b"");
    }

    #[test]
    fn exact_match_ignores_case() {
        let p = pattern("HttpBin.Default");
        assert!(p.matches(b"httpbin.default"));
        assert!(p.matches(b"HTTPBIN.DEFAULT"));
        assert!(!p.matches(b"httpbin"));
        assert!(!p.matches(b"xhttpbin.default"));
    }

    #[test]
    fn ipv6_host_matches_with_and_without_port() {
        let p = pattern("[::1]");
        assert!(p.matches(host_of(b"[::1]:8080")));
        assert!(p.matches(host_of(b"[::1]")));
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = pattern("*.Example.com");
        assert!(p.matches(b"a.example.com"));
        assert!(p.matches(b"a.b.EXAMPLE.com"));
        assert!(!p.matches(b"example.com"));
        assert!(!p.matches(b".example.com"));
        assert!(!p.matches(b"badexample.com"));
    }

    #[test]
    fn patterns_print_as_written() {
        assert_eq!(pattern("HttpBin").to_string(), "httpbin");
        assert_eq!(pattern("*.Example.com").to_string(), "*.example.com");
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(HostPattern::parse("").is_err());
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::parse("*.*.com").is_err());
        assert!(HostPattern::parse("httpbin:8000")
            .unwrap_err()
            .contains("without a port"));
        assert!(HostPattern::parse("[::1]:80").is_err());
    }
}
