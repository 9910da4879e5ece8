//! Charts drawn on the server as SVG (no chart library, no script): a step line for balances and
//! bars per day. Each comes with its numbers as a table for screen readers; the SVG holds only
//! numbers, fixed words and escaped labels.

use super::view::{escape, usd_units};

const W: f64 = 600.0;
const H: f64 = 220.0;
const LEFT: f64 = 8.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 24.0;

pub struct Chart {
    pub id: String,
    pub title: String,
    /// The drawing (trusted markup built here).
    pub svg: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// A round maximum for the y axis (1, 2 or 5 × 10ⁿ units of 0.01 USD and up).
fn nice_max(max: i64) -> i64 {
    let mut step = 1_000_000i64; // 0.01 USD
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= max {
                return step.saturating_mul(m);
            }
        }
        if step > i64::MAX / 10 {
            return max;
        }
        step *= 10;
    }
}

fn y_of(units: i64, max: i64) -> f64 {
    let plot = H - TOP - BOTTOM;
    TOP + plot - (units.max(0) as f64 / max.max(1) as f64) * plot
}

fn date(ms: i64) -> String {
    crate::clock::rfc3339(ms)[..10].to_string()
}

fn frame(id: &str, title: &str, max: i64, first: &str, last: &str, body: &str) -> String {
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"{id}-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{title}</title>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\"/>\
         <line class=\"grid\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{W}\" y2=\"{TOP}\"/>\
         <text class=\"label\" x=\"{LEFT}\" y=\"16\">{top}</text>\
         {body}\
         <text class=\"label\" x=\"{LEFT}\" y=\"{H}\" dy=\"-4\">{first}</text>\
         <text class=\"label end\" x=\"{W}\" y=\"{H}\" dy=\"-4\">{last}</text></svg>",
        title = escape(title),
        base = H - BOTTOM,
        top = usd_units(max),
    )
}

/// A wallet's balances over time as step lines: `series` names each value of a point.
pub fn balance_lines(id: &str, title: &str, series: &[&'static str], points: &[(i64, Vec<i64>)]) -> Chart {
    let max = nice_max(points.iter().flat_map(|(_, v)| v.iter().copied()).max().unwrap_or(0).max(1));
    let (t0, t1) = (points.first().map_or(0, |p| p.0), points.last().map_or(0, |p| p.0));
    let x_of = |i: usize, at: i64| {
        let share =
            if t1 > t0 { (at - t0) as f64 / (t1 - t0) as f64 } else { i as f64 / (points.len().max(2) - 1) as f64 };
        LEFT + share * (W - LEFT)
    };
    let mut body = String::new();
    for (s, name) in series.iter().enumerate() {
        let mut d = String::new();
        for (i, (at, values)) in points.iter().enumerate() {
            let (x, y) = (x_of(i, *at), y_of(values[s], max));
            d.push_str(&if i == 0 { format!("M{x:.1} {y:.1}") } else { format!(" H{x:.1} V{y:.1}") });
        }
        body.push_str(&format!("<path class=\"line s{s}\" d=\"{d}\"><title>{}</title></path>", escape(name)));
    }
    for (s, name) in series.iter().enumerate() {
        let x = W - 150.0 * (series.len() - s) as f64;
        body.push_str(&format!(
            "<rect class=\"key s{s}\" x=\"{x}\" y=\"6\" width=\"12\" height=\"12\"/><text class=\"label\" x=\"{}\" y=\"16\">{}</text>",
            x + 16.0,
            escape(name)
        ));
    }
    let mut columns = vec!["Time (UTC)"];
    columns.extend(series.iter().copied());
    Chart {
        id: id.into(),
        title: title.into(),
        svg: frame(id, title, max, &date(t0), &date(t1), &body),
        columns,
        rows: points
            .iter()
            .map(|(at, values)| {
                let mut row = vec![crate::clock::rfc3339(*at).replace('T', " ").replace('Z', "")];
                row.extend(values.iter().map(|v| usd_units(*v)));
                row
            })
            .collect(),
    }
}

/// One bar per day.
pub fn daily_bars(id: &str, title: &str, column: &'static str, days: &[(i64, i64)]) -> Chart {
    let max = nice_max(days.iter().map(|d| d.1).max().unwrap_or(0).max(1));
    let slot = (W - LEFT) / days.len().max(1) as f64;
    let mut body = String::new();
    for (i, (day, units)) in days.iter().enumerate() {
        let y = y_of(*units, max);
        body.push_str(&format!(
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}: {}</title></rect>",
            LEFT + i as f64 * slot + slot * 0.15,
            slot * 0.7,
            H - BOTTOM - y,
            date(*day),
            usd_units(*units)
        ));
    }
    let (first, last) = (days.first().map_or(0, |d| d.0), days.last().map_or(0, |d| d.0));
    Chart {
        id: id.into(),
        title: title.into(),
        svg: frame(id, title, max, &date(first), &date(last), &body),
        columns: vec!["Day (UTC)", column],
        rows: days.iter().map(|(d, u)| vec![date(*d), usd_units(*u)]).collect(),
    }
}

/// Charts cover the last 30 days.
const DAYS: i64 = 30;

/// The wallet page's charts: the user's balance over the last 30 days (or since the wallet's
/// first money, if later, so a new wallet's chart is not a flat month), and each owned agent's
/// earnings per day.
pub async fn wallet(
    state: &crate::state::AppState,
    user: &crate::ledger::Principal,
    agents: &[(String, String)],
) -> sqlx::Result<(Chart, Vec<Chart>)> {
    use crate::ledger::history;
    let now = state.now();
    let since = now - DAYS * history::DAY_MS;
    let points: Vec<(i64, Vec<i64>)> = history::balance_series(&state.db, user, since, now, 120)
        .await?
        .into_iter()
        .map(|p| (p.at, vec![p.available, p.total]))
        .collect();
    let balance = balance_lines("balance-chart", "Your balance", &["Available", "Total with escrow"], &points);
    let mut earnings = Vec::new();
    for (i, (id, name)) in agents.iter().enumerate() {
        let days = history::earnings_per_day(&state.db, id, now, DAYS).await?;
        earnings.push(daily_bars(&format!("earnings-{i}"), &format!("{name}: earnings per day"), "Earned", &days));
    }
    Ok((balance, earnings))
}

/// The admin page's charts: fee income and settled volume per day over the last 30 days.
pub async fn platform(state: &crate::state::AppState) -> sqlx::Result<(Chart, Chart)> {
    let (fees, volume) = crate::ledger::history::fees_and_volume_per_day(&state.db, state.now(), DAYS).await?;
    Ok((
        daily_bars("fees-chart", "Fee income per day", "Fees", &fees),
        daily_bars("volume-chart", "Volume settled per day", "Volume", &volume),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up() {
        assert_eq!(nice_max(1), 1_000_000);
        assert_eq!(nice_max(5_000_000_000), 5_000_000_000);
        assert_eq!(nice_max(5_000_000_001), 10_000_000_000);
        assert_eq!(nice_max(i64::MAX), i64::MAX);
    }

    #[test]
    fn charts_carry_their_numbers_and_nothing_else() {
        let c = balance_lines(
            "w",
            "Balance <&>",
            &["Available", "Total"],
            &[(0, vec![0, 0]), (1000, vec![5_000_000_000, 5_000_000_000])],
        );
        assert!(c.svg.starts_with("<svg") && c.svg.contains("Balance &lt;&amp;&gt;") && !c.svg.contains("<script"));
        assert!(c.svg.contains("<path class=\"line s0\" d=\"M8.0 196.0 H600.0 V26.0\""), "{}", c.svg);
        assert_eq!(c.rows[1], vec!["1970-01-01 00:00:01", "50.00 USD", "50.00 USD"]);
        let bars = daily_bars("f", "Fees", "Fees", &[(0, 0), (86_400_000, 2_000_000)]);
        assert_eq!(bars.rows, vec![vec!["1970-01-01", "0.00 USD"], vec!["1970-01-02", "0.02 USD"]]);
        assert_eq!(bars.svg.matches("<rect class=\"bar\"").count(), 2);
    }
}
