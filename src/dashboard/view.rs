//! How the pages show things: amounts always with their currency, times as "5 minutes ago" with
//! the exact UTC time on hover (the `when` template filter), safe local redirect targets.

use crate::money::Amount;

/// An amount as people read it: `10.50 USD`.
pub fn usd(amount: Amount) -> String {
    format!("{amount} USD")
}

/// Units (10⁻⁸ USD) as `10.50 USD`; a negative count (never stored) shows as zero.
pub fn usd_units(units: i64) -> String {
    usd(Amount::from_units(units).unwrap_or_default())
}

/// "just now", "5 minutes ago", "in 3 days", or the date for anything older than a month.
pub fn relative(at_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - at_ms) / 1000;
    let (n, unit) = match secs.abs() {
        s if s < 45 => return "just now".into(),
        s if s < 3_600 => ((s + 30) / 60, "minute"),
        s if s < 86_400 => ((s + 1_800) / 3_600, "hour"),
        s if s < 30 * 86_400 => ((s + 43_200) / 86_400, "day"),
        _ => return format!("on {}", &crate::clock::rfc3339(at_ms)[..10]),
    };
    let n = n.max(1);
    let plural = if n == 1 { "" } else { "s" };
    if secs >= 0 { format!("{n} {unit}{plural} ago") } else { format!("in {n} {unit}{plural}") }
}

/// A time for a `<time>` element: relative text and the exact UTC time.
pub fn time_html(at_ms: i64, now_ms: i64) -> String {
    let iso = crate::clock::rfc3339(at_ms);
    let exact = iso.replace('T', " ").replace('Z', " UTC");
    format!("<time datetime=\"{iso}\" title=\"{exact}\">{}</time>", relative(at_ms, now_ms))
}

/// Template filters (askama looks them up as `filters::…` beside each page).
pub mod filters {
    use std::borrow::Borrow;
    use std::fmt::Display;

    use askama::filters::Safe;

    /// `{{ t|when(now) }}`: an RFC 3339 time as relative text with the exact UTC time on hover;
    /// anything else ("never") is shown as it is, escaped.
    pub fn when<T: Display, N: Borrow<i64>>(value: T, _: &dyn askama::Values, now: N) -> askama::Result<Safe<String>> {
        let text = value.to_string();
        Ok(Safe(match crate::clock::parse_rfc3339(&text) {
            Some(at) => super::time_html(at, *now.borrow()),
            None => super::escape(&text),
        }))
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A `next` target after signing in: a path on this site only (`/…`, never `//host` or `/\host`),
/// else `None`.
pub fn local_path(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 512
        && next.chars().all(|c| c.is_ascii_graphic());
    ok.then(|| next.to_string())
}

/// A DID as a path segment (`%` is the only character of a DID a path would read otherwise).
pub fn did_path(did: &str) -> String {
    did.replace('%', "%25")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_800_000_000_000;
        assert_eq!(relative(now - 10_000, now), "just now");
        assert_eq!(relative(now - 5 * 60_000, now), "5 minutes ago");
        assert_eq!(relative(now - 60_000, now), "1 minute ago");
        assert_eq!(relative(now - 3 * 3_600_000, now), "3 hours ago");
        assert_eq!(relative(now + 2 * 86_400_000, now), "in 2 days");
        assert!(relative(now - 90 * 86_400_000, now).starts_with("on 20"));
        let html = time_html(now, now);
        assert!(
            html.contains("datetime=\"2027-01-15T08:00:00Z\"") && html.contains("title=\"2027-01-15 08:00:00 UTC\"")
        );
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/agents/did:a:b/hire")).as_deref(), Some("/agents/did:a:b/hire"));
        for bad in ["//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)", "/a b", ""] {
            assert_eq!(local_path(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn amounts_carry_their_currency() {
        assert_eq!(usd(Amount::parse("10.5").unwrap()), "10.50 USD");
        assert_eq!(usd_units(-1), "0.00 USD");
    }
}
