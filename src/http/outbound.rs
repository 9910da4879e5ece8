//! Outbound HTTP policy (webhooks, agent callbacks, availability probes, and every later outbound
//! call): https on port 443 (or 80) to globally routable addresses only, unless the server runs
//! with `--allow-private-network` (tests, closed networks).
//!
//! Two checks, one for each kind of host:
//! - `check_url` judges the URL itself: scheme, length, port, names that are local by definition
//!   (`localhost`, `*.localhost`, `*.local`, with or without the trailing dot) and IP literals,
//!   which never reach a resolver.
//! - `client` builds the one reqwest client whose resolver (`CheckedResolver`) resolves each name
//!   once, refuses the whole name if any address is not global, and hands reqwest exactly the
//!   addresses it checked, so the connection goes to an address that was checked (no second lookup
//!   for a rebinding DNS server to answer differently). System proxies are off for the same reason:
//!   a proxy would resolve the name itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest accepted outbound URL, in characters.
pub const MAX_URL_LEN: usize = 2_048;

/// Checks a URL's shape: absolute, http(s), at most `MAX_URL_LEN` characters; unless private
/// networks are allowed, also https, port 443 or 80, and a host that is neither a local name nor
/// a non-global IP literal. Names are judged again, by their addresses, when a request resolves
/// them (see `client`).
pub fn check_url(s: &str, allow_private: bool) -> Result<url::Url, String> {
    if s.chars().count() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(s).map_err(|_| "must be an absolute URL".to_string())?;
    match (url.scheme(), allow_private) {
        ("https", _) | ("http", true) => {}
        ("http", false) => return Err("must use https".into()),
        _ => return Err("must be an http(s) URL".into()),
    }
    if allow_private {
        return Ok(url);
    }
    if !matches!(url.port_or_known_default(), Some(80 | 443)) {
        return Err("must use port 443 or 80".into());
    }
    let global = match url.host() {
        Some(url::Host::Ipv4(ip)) => is_global(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_global(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => !is_local_name(d),
        None => false,
    };
    if global { Ok(url) } else { Err("must not point at a private, loopback or otherwise non-global address".into()) }
}

/// Names that always mean this machine or the local link (RFC 6761, RFC 6762), trailing dot or not.
fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.is_empty()
        || name == "localhost"
        || name.ends_with(".localhost")
        || name == "local"
        || name.ends_with(".local")
}

/// Whether an address is globally routable: an allow-list for IPv6 (2000::/3 minus its special
/// blocks) and a deny-list of every special-purpose IPv4 block (IANA special-purpose registries).
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    u128::from(ip) & mask == u128::from(net) & mask
}

const NON_GLOBAL_V4: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata services)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast 255.255.255.255
];

fn is_global_v4(ip: Ipv4Addr) -> bool {
    !NON_GLOBAL_V4.iter().any(|&(net, len)| in_v4(ip, net, len))
}

/// Blocks inside 2000::/3 that are not globally routable unicast.
const NON_GLOBAL_V6_IN_2000: &[(Ipv6Addr, u32)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (Teredo 2001::/32 included)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16), // 6to4: embeds an IPv4 address
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

fn is_global_v6(ip: Ipv6Addr) -> bool {
    // ::ffff:a.b.c.d reaches the IPv4 address: judge that. Everything else outside 2000::/3 —
    // ::, ::1, IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, discard 100::/64,
    // unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8 — is not
    // global.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
        && !NON_GLOBAL_V6_IN_2000.iter().any(|&(net, len)| in_v6(ip, net, len))
}

/// Resolves a name once and answers only with addresses that passed the policy.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_checked(&host, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Every address of `host` (port 0: the caller sets the port), or an error when there is none or
/// when any of them is not global and private networks are not allowed.
pub async fn resolve_checked(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, std::io::Error> {
    use std::io::{Error, ErrorKind};
    if !allow_private && is_local_name(host) {
        return Err(Error::new(ErrorKind::PermissionDenied, format!("{host} is a local name")));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    if addrs.is_empty() {
        return Err(Error::new(ErrorKind::NotFound, format!("{host} has no address")));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_global(a.ip())) {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("{host} resolves to a non-global address ({})", bad.ip()),
        ));
    }
    Ok(addrs)
}

/// The outbound HTTP client: the checking resolver, no system proxy, no redirects, short timeouts.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn urls_must_be_public_https_unless_allowed() {
        assert!(check_url("https://agent.example.com/hook", false).is_ok());
        for bad in [
            "http://agent.example.com/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://100.64.0.1/x",
            "https://169.254.169.254/latest",
            "https://localhost/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "ftp://example.com/x",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/hook", true).is_ok());
        assert!(check_url("ftp://x.example.com", true).is_err());
    }

    #[test]
    fn the_issue_s_addresses_and_names_are_refused() {
        for bad in [
            "https://localhost./x",
            "https://LOCALHOST./x",
            "https://a.b.localhost./x",
            "https://printer.local./x",
            "https://printer.local/x",
            "https://[::7f00:1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[2002:7f00:1::]/x",
            "https://[2002:c0a8:101::1]/x",
            "https://[fec0::1]/x",
            "https://198.18.0.1/x",
            "https://198.19.255.255/x",
            "https://240.0.0.1/x",
            "https://255.255.255.255/x",
            // Other spellings of loopback that the URL parser turns into 127.0.0.1.
            "https://127.1/x",
            "https://0x7f000001/x",
            "https://2130706433/x",
            "https://127.0.0.1./x",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
            assert!(check_url(bad, true).is_ok(), "{bad} is fine on a private network");
        }
    }

    #[test]
    fn every_non_global_ipv4_block_is_refused_at_both_ends() {
        for (net, len) in NON_GLOBAL_V4 {
            let first = Ipv4Addr::from(*net);
            let last = Ipv4Addr::from(u32::from(first) | (u32::MAX >> len));
            for ip in [first, last] {
                assert!(!is_global(ip.into()), "{ip}");
                assert!(check_url(&format!("https://{ip}/x"), false).is_err(), "{ip}");
                let mapped = ip.to_ipv6_mapped();
                assert!(!is_global(mapped.into()), "{mapped}");
                assert!(check_url(&format!("https://[{mapped}]/x"), false).is_err(), "{mapped}");
            }
        }
        for ip in ["0.0.0.0", "10.0.0.1", "100.127.255.254", "172.31.0.1", "192.0.0.8", "192.0.2.1", "192.88.99.1"] {
            assert!(!is_global(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "169.254.169.254"] {
            assert!(!is_global(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_global_ipv6_unicast_is_accepted() {
        for ip in [
            "::",
            "::1",
            "::7f00:1",
            "::a9fe:a9fe",
            "::808:808", // IPv4-compatible, even of a global IPv4 address
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",          // Teredo
            "2001:1ff:ffff::1", // the end of 2001::/23
            "2001:db8::1",
            "2002::1",
            "2002:7f00:1::",
            "3fff::1",
            "3fff:fff:ffff::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "ff0e::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
        ] {
            let v6: Ipv6Addr = ip.parse().unwrap();
            assert!(!is_global(v6.into()), "{ip}");
            assert!(check_url(&format!("https://[{v6}]/x"), false).is_err(), "{ip}");
        }
        for ip in
            ["2606:4700:4700::1111", "2a00:1450:4001::1", "2001:200::1", "3ffe::1", "3fff:1000::1", "::ffff:8.8.8.8"]
        {
            let v6: Ipv6Addr = ip.parse().unwrap();
            assert!(is_global(v6.into()), "{ip}");
            assert!(check_url(&format!("https://[{v6}]/x"), false).is_ok(), "{ip}");
        }
    }

    #[test]
    fn global_ipv4_addresses_are_accepted() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.88.98.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            assert!(is_global(ip.parse().unwrap()), "{ip}");
            assert!(check_url(&format!("https://{ip}/x"), false).is_ok(), "{ip}");
        }
    }

    #[test]
    fn ports_other_than_443_and_80_need_private_networks() {
        assert!(check_url("https://hooks.example.com:443/x", false).is_ok());
        assert!(check_url("https://hooks.example.com:80/x", false).is_ok());
        for bad in ["https://hooks.example.com:8443/x", "https://hooks.example.com:22/x", "https://8.8.8.8:6379/x"] {
            assert!(check_url(bad, false).is_err(), "{bad}");
            assert!(check_url(bad, true).is_ok(), "{bad}");
        }
    }

    #[test]
    fn urls_are_at_most_2048_characters() {
        let base = "https://hooks.example.com/";
        let longest = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert!(check_url(&longest, false).is_ok());
        let too_long = format!("{longest}a");
        assert!(check_url(&too_long, false).is_err());
        assert!(check_url(&too_long, true).is_err(), "the length limit holds on private networks too");
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
        // `localhost` resolves without the network; refused as a name and by its addresses.
        let refused = CheckedResolver { allow_private: false }.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(refused.is_err());
        let err = resolve_checked("localhost", false).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        // IP literals go through the system resolver too: judged by the address.
        let err = resolve_checked("127.0.0.1", false).await.unwrap_err();
        assert!(err.to_string().contains("non-global"), "{err}");
        let allowed = CheckedResolver { allow_private: true }.resolve(Name::from_str("localhost").unwrap()).await;
        let addrs: Vec<SocketAddr> = allowed.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn the_client_connects_only_through_the_checking_resolver() {
        // A request straight through the client, skipping check_url: the resolver refuses it
        // before any connection is made.
        let err = client(false).unwrap().get("http://localhost:9/").send().await.unwrap_err();
        let mut chain = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        while let Some(e) = source {
            chain.push_str(&format!("{e}; "));
            source = e.source();
        }
        assert!(err.is_connect() && chain.contains("local name"), "{chain}");
    }
}
