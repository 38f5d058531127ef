//! The network allowlist, as plain data and pure decisions: which names (and ports) the
//! egress proxy may connect a sandbox to, and which resolved addresses are acceptable.
//!
//! Entries: `host` (ports 80 and 443), `host:port`, `*.domain` (any name ending in
//! `.domain`, at a label boundary — `evil-domain.com` does not match `*.domain.com`, nor does
//! `domain.com` itself), `*.domain:port`, and IP literals (`127.0.0.1:8080`, `[::1]:8080`).
//! Deny entries match any port unless they name one; deny wins. Names are compared in lower
//! case without a trailing dot.

use std::net::IpAddr;

/// Where the proxy listens inside the sandbox's network namespace (loopback only).
pub const PROXY_PORT: u16 = 3128;

/// The proxy's address inside the sandbox, as a listener is written (`127.0.0.1:3128`).
pub fn proxy_listener() -> String {
    format!("127.0.0.1:{PROXY_PORT}")
}

/// Ports an entry without a port allows.
const WEB_PORTS: [u16; 2] = [80, 443];

/// Names that are cloud metadata services whatever they resolve to.
const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata"];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Exact(String),
    /// `*.domain`: the suffix with its leading dot.
    Suffix(String),
    Addr(IpAddr),
}

/// One allow or deny entry, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    host: Host,
    port: Option<u16>,
    pub text: String,
}

/// The policy the proxy applies.
#[derive(Clone, Debug, Default)]
pub struct NetPolicy {
    pub allow: Vec<Entry>,
    pub deny: Vec<Entry>,
    /// Names pinned to an address (`--net-resolve NAME=ADDR`): resolved to that, and the
    /// address counts as named explicitly.
    pub resolve: Vec<(String, IpAddr)>,
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl Entry {
    /// Parses one entry; `field` names where it came from, for the error.
    pub fn parse(field: &str, text: &str) -> Result<Entry, String> {
        let bad = |why: &str| {
            Err(format!(
                "{field} {text:?}: {why} (expected host, host:port, *.domain[:port], or an IP address[:port])"
            ))
        };
        let t = text.trim();
        if t.is_empty() {
            return bad("empty");
        }
        // [v6]:port, v6, v4:port, v4, host:port, host
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let Some((addr, tail)) = rest.split_once(']') else {
                return bad("unclosed [");
            };
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p),
                None if tail.is_empty() => None,
                None => return bad("junk after ]"),
            };
            (addr, port)
        } else if t.parse::<std::net::Ipv6Addr>().is_ok() {
            (t, None)
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return bad("the port must be 1 to 65535"),
            },
            None => None,
        };
        let host = if let Ok(addr) = host.parse::<IpAddr>() {
            Host::Addr(addr)
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') || !valid_name(domain) {
                return bad("not a domain after *.");
            }
            Host::Suffix(format!(".{}", normalize(domain)))
        } else {
            if host.contains('*') {
                return bad("* only as a whole first label (*.domain)");
            }
            if !valid_name(host) {
                return bad("not a host name");
            }
            Host::Exact(normalize(host))
        };
        Ok(Entry {
            host,
            port,
            text: t.to_string(),
        })
    }

    fn matches_host(&self, host: &str) -> bool {
        match &self.host {
            Host::Exact(h) => h == host,
            Host::Suffix(s) => host.ends_with(s.as_str()) && host.len() > s.len(),
            Host::Addr(a) => host.parse::<IpAddr>().map(|h| h == *a).unwrap_or(false),
        }
    }

    fn allows_port(&self, port: u16) -> bool {
        match self.port {
            Some(p) => p == port,
            None => WEB_PORTS.contains(&port),
        }
    }

    fn denies_port(&self, port: u16) -> bool {
        self.port.map(|p| p == port).unwrap_or(true)
    }
}

fn valid_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An address a proxy must not connect to unless it is named explicitly: loopback, private
/// (RFC 1918, ULA, shared address space), link-local (the cloud metadata address among them),
/// unspecified, multicast, broadcast. Documentation ranges are not in it.
pub fn is_internal(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Why a connection is refused, with the entry that would allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub reason: String,
    /// The entry to add to allow it, if adding one would.
    pub to_allow: Option<String>,
}

impl NetPolicy {
    pub fn parse(
        allow: &[String],
        deny: &[String],
        resolve: &[String],
    ) -> Result<NetPolicy, String> {
        let mut out = NetPolicy::default();
        for list in allow {
            for e in list.split(',').filter(|e| !e.trim().is_empty()) {
                out.allow.push(Entry::parse("network allow", e)?);
            }
        }
        for list in deny {
            for e in list.split(',').filter(|e| !e.trim().is_empty()) {
                out.deny.push(Entry::parse("network deny", e)?);
            }
        }
        for pair in resolve {
            let Some((name, addr)) = pair.split_once('=') else {
                return Err(format!("--net-resolve {pair:?}: expected NAME=ADDRESS"));
            };
            if !valid_name(name) {
                return Err(format!(
                    "--net-resolve {pair:?}: {name:?} is not a host name"
                ));
            }
            let addr: IpAddr = addr
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| format!("--net-resolve {pair:?}: {addr:?} is not an IP address"))?;
            out.resolve.push((normalize(name), addr));
        }
        Ok(out)
    }

    /// The address a name is pinned to, if it is.
    pub fn pinned(&self, host: &str) -> Option<IpAddr> {
        let host = normalize(host);
        self.resolve
            .iter()
            .find(|(n, _)| *n == host)
            .map(|(_, a)| *a)
    }

    /// Whether `host:port` may be asked for: denied by a deny entry, or allowed by an allow
    /// entry (returned). Decided on the name, before anything is resolved.
    pub fn decide(&self, host: &str, port: u16) -> Result<&Entry, Denial> {
        let host = normalize(host);
        if let Some(d) = self
            .deny
            .iter()
            .find(|d| d.matches_host(&host) && d.denies_port(port))
        {
            return Err(Denial {
                reason: format!("{host}:{port} is denied by the entry {:?}", d.text),
                to_allow: None,
            });
        }
        let allowed = self
            .allow
            .iter()
            .find(|a| a.matches_host(&host) && a.allows_port(port));
        match allowed {
            Some(entry) => {
                if METADATA_NAMES.contains(&host.as_str())
                    && entry.host != Host::Exact(host.clone())
                {
                    return Err(Denial {
                        reason: format!("{host} is a cloud metadata service; only an entry naming it exactly allows it"),
                        to_allow: Some(format!("{host}:{port}")),
                    });
                }
                Ok(entry)
            }
            None => Err(Denial {
                reason: format!("{host}:{port} is not on the allowlist"),
                to_allow: Some(if WEB_PORTS.contains(&port) {
                    host.clone()
                } else {
                    format!("{host}:{port}")
                }),
            }),
        }
    }

    /// Whether the proxy may connect to `addr`, which `host` resolved to under `entry`: an
    /// internal address only when named explicitly (an IP entry equal to it, or a pin).
    pub fn check_address(&self, host: &str, addr: IpAddr, entry: &Entry) -> Result<(), Denial> {
        if !is_internal(addr) {
            return Ok(());
        }
        if entry.host == Host::Addr(addr) || self.pinned(host) == Some(addr) {
            return Ok(());
        }
        Err(Denial {
            reason: format!(
                "{} resolves to {addr}, a loopback, private, link-local or metadata address: refused unless the address itself is named",
                normalize(host)
            ),
            to_allow: Some(match addr {
                IpAddr::V6(a) => format!("[{a}]"),
                IpAddr::V4(a) => a.to_string(),
            }),
        })
    }

    /// The entries as written, for the attestation.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "allow": self.allow.iter().map(|e| &e.text).collect::<Vec<_>>(),
            "deny": self.deny.iter().map(|e| &e.text).collect::<Vec<_>>(),
            "resolve": self.resolve.iter().map(|(n, a)| format!("{n}={a}")).collect::<Vec<_>>(),
            "proxy": proxy_listener(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> NetPolicy {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        NetPolicy::parse(&v(allow), &v(deny), &[]).unwrap()
    }

    #[test]
    fn wildcards_match_at_label_boundaries_only() {
        let p = policy(&["*.domain.com"], &[]);
        assert!(p.decide("api.domain.com", 443).is_ok());
        assert!(p.decide("a.b.domain.com", 443).is_ok());
        assert!(p.decide("API.Domain.COM.", 443).is_ok());
        assert!(p.decide("domain.com", 443).is_err());
        assert!(p.decide("evil-domain.com", 443).is_err());
        assert!(p.decide("domain.com.evil.org", 443).is_err());
    }

    #[test]
    fn ports_default_to_web_ports_and_deny_wins() {
        let p = policy(
            &["github.com", "example.org:8080"],
            &["gist.github.com", "github.com:80"],
        );
        assert!(p.decide("github.com", 443).is_ok());
        assert!(p.decide("github.com", 22).is_err());
        assert!(p
            .decide("github.com", 80)
            .unwrap_err()
            .reason
            .contains("denied"));
        assert!(p.decide("example.org", 8080).is_ok());
        assert!(p.decide("example.org", 443).is_err());
        let p = policy(&["*.github.com"], &["gist.github.com"]);
        assert!(p
            .decide("gist.github.com", 443)
            .unwrap_err()
            .reason
            .contains("denied"));
        assert!(p.decide("api.github.com", 443).is_ok());
        let empty = policy(&[], &[]);
        assert_eq!(
            empty
                .decide("x.example", 443)
                .unwrap_err()
                .to_allow
                .as_deref(),
            Some("x.example")
        );
    }

    #[test]
    fn internal_addresses_need_naming() {
        let p = NetPolicy::parse(
            &[
                "api.example:8080".into(),
                "127.0.0.1:9000".into(),
                "pinned.example".into(),
            ],
            &[],
            &["pinned.example=10.0.0.5".into()],
        )
        .unwrap();
        let e = p.decide("api.example", 8080).unwrap();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(
                p.check_address("api.example", internal.parse().unwrap(), e)
                    .is_err(),
                "{internal}"
            );
        }
        for public in [
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "93.184.216.34",
            "2001:db8::1",
        ] {
            assert!(
                p.check_address("api.example", public.parse().unwrap(), e)
                    .is_ok(),
                "{public}"
            );
        }
        let lit = p.decide("127.0.0.1", 9000).unwrap();
        assert!(p
            .check_address("127.0.0.1", "127.0.0.1".parse().unwrap(), lit)
            .is_ok());
        let pin = p.decide("pinned.example", 443).unwrap();
        assert!(p
            .check_address("pinned.example", "10.0.0.5".parse().unwrap(), pin)
            .is_ok());
        assert!(p
            .check_address("pinned.example", "10.0.0.6".parse().unwrap(), pin)
            .is_err());
        let meta = policy(&["*.internal", "*.google.internal"], &[]);
        assert!(meta.decide("metadata.google.internal", 80).is_err());
        let named = policy(&["metadata.google.internal"], &[]);
        assert!(named.decide("metadata.google.internal", 80).is_ok());
    }

    #[test]
    fn bad_entries_are_precise_errors() {
        for bad in [
            "",
            "a*b.com",
            "*.",
            "host:0",
            "host:99999",
            "[::1",
            "exa mple.com",
        ] {
            let err = NetPolicy::parse(&[bad.to_string()], &[], &[]);
            assert!(err.is_err() || bad.is_empty(), "{bad:?}");
        }
        assert!(NetPolicy::parse(&[], &[], &["x=notanip".into()]).is_err());
        assert!(NetPolicy::parse(&["[::1]:8080".into()], &[], &[]).is_ok());
    }
}
