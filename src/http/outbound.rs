//! Outbound HTTP policy (webhooks, availability probes): https to public addresses only, unless
//! the server runs with `--allow-private-network` (tests, closed networks).

use std::net::IpAddr;

/// Checks a URL's shape: absolute, http(s); https and a public-looking host unless private
/// networks are allowed. Names are checked again after DNS resolution when a request is made.
pub fn check_url(s: &str, allow_private: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|_| "must be an absolute URL".to_string())?;
    match (url.scheme(), allow_private) {
        ("https", _) | ("http", true) => {}
        ("http", false) => return Err("must use https".into()),
        _ => return Err("must be an http(s) URL".into()),
    }
    if allow_private {
        return Ok(url);
    }
    let private = match url.host() {
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local"),
        None => true,
    };
    if private { Err("must not point at a private or loopback address".into()) } else { Ok(url) }
}

/// Loopback, private, link-local, CGNAT, unique-local, unspecified, broadcast and multicast.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Resolves the URL's host and refuses it when any address is private (unless allowed), so a
/// public-looking name cannot be pointed at the internal network.
pub async fn check_resolved(url: &url::Url, allow_private: bool) -> Result<(), String> {
    check_url(url.as_str(), allow_private)?;
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    for addr in addrs {
        if is_private(addr.ip()) {
            return Err(format!("{host} resolves to a private address"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
