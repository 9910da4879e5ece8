//! The marketplace views: the paginated list, discovery with filters and sorting, capabilities.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::model::AgentRow;
use super::store::{self, AGENT_COLUMNS, Arg, SqlBuilder};
use crate::db::Db;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::pagination::PageRequest;
use crate::money::Amount;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only agents offering this capability.
    pub capability: Option<String>,
    /// Case-insensitive text search over name and description.
    pub q: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub offset: Option<String>,
}

/// Active agents, newest first.
pub async fn list(db: &Db, query: &ListQuery, page: &PageRequest) -> ApiResult<(Vec<AgentRow>, i64)> {
    let mut filter = SqlBuilder::new(" FROM agents a WHERE a.status = 'active'");
    if let Some(cap) = query.capability.as_deref() {
        filter.push(
            " AND EXISTS (SELECT 1 FROM agent_capabilities c WHERE c.agent_id = a.id AND c.capability = ?)",
            [Arg::Text(cap.trim().to_ascii_lowercase())],
        );
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = format!("%{}%", q.to_lowercase().replace(['\\', '%', '_'], ""));
        filter.push(
            " AND (LOWER(a.name) LIKE ? OR LOWER(COALESCE(a.description, '')) LIKE ?)",
            [Arg::Text(pattern.clone()), Arg::Text(pattern)],
        );
    }
    let count = SqlBuilder { sql: format!("SELECT COUNT(*){}", filter.sql), args: filter.args.clone() };
    let (total,): (i64,) = count.query_as().fetch_one(db.pool()).await?;
    let mut select = SqlBuilder { sql: format!("SELECT {}{}", prefixed_columns(), filter.sql), args: filter.args };
    select
        .push(" ORDER BY a.created_at DESC, a.id DESC LIMIT ? OFFSET ?", [Arg::Int(page.limit), Arg::Int(page.offset)]);
    let rows: Vec<AgentRow> = select.query_as().fetch_all(db.pool()).await?;
    Ok((rows, total))
}

/// The agent columns qualified with the `a.` alias used by the marketplace queries.
fn prefixed_columns() -> String {
    AGENT_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiscoverQuery {
    pub capability: Option<String>,
    /// Decimal string, inclusive.
    pub min_price: Option<String>,
    /// Decimal string, inclusive.
    pub max_price: Option<String>,
    /// 0–5, inclusive.
    pub min_reputation: Option<String>,
    /// `reputation_score` (default), `base_price` or `recent`.
    pub sort_by: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<String>,
}

/// One discovery result, in the shape the Agrenting clients read.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredAgent {
    pub id: String,
    pub did: String,
    pub name: String,
    pub description: Option<String>,
    pub capabilities: Vec<String>,
    pub price_per_task: Amount,
    pub base_price: Amount,
    pub pricing_model: String,
    pub reputation: f64,
    pub reputation_score: f64,
    pub total_tasks: i64,
    pub success_rate: f64,
    pub availability_status: String,
}

impl DiscoveredAgent {
    pub fn from_row(a: &AgentRow, now: i64) -> Self {
        let price = Amount::from_units(a.base_price).unwrap_or_default();
        DiscoveredAgent {
            id: a.id.clone(),
            did: a.did.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            capabilities: a.capabilities(),
            price_per_task: price,
            base_price: price,
            pricing_model: a.pricing_model.clone(),
            reputation: a.reputation(),
            reputation_score: a.reputation(),
            total_tasks: a.tasks_completed,
            success_rate: a.success_rate(),
            availability_status: a.availability(now).to_string(),
        }
    }
}

pub async fn discover(db: &Db, query: &DiscoverQuery) -> ApiResult<Vec<AgentRow>> {
    let mut errors = Vec::new();
    let mut price = |field: &str, v: &Option<String>| match v.as_deref().map(Amount::parse) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            errors.push(FieldError::new(field, e.to_string()));
            None
        }
    };
    let min_price = price("min_price", &query.min_price);
    let max_price = price("max_price", &query.max_price);
    let min_reputation = match query.min_reputation.as_deref() {
        None => None,
        Some(s) => match parse_reputation(s) {
            Some(r) => Some(r),
            None => {
                errors.push(FieldError::new("min_reputation", "must be a number from 0 to 5"));
                None
            }
        },
    };
    let order = match query.sort_by.as_deref().unwrap_or("reputation_score") {
        "reputation_score" | "reputation" => "a.reputation_centi DESC, a.tasks_completed DESC, a.created_at DESC",
        "base_price" | "price" => "a.base_price ASC, a.reputation_centi DESC",
        "recent" | "created_at" => "a.created_at DESC, a.id DESC",
        "availability" => "a.has_callback DESC, a.last_seen_at DESC, a.reputation_centi DESC",
        _ => {
            errors.push(FieldError::new("sort_by", "must be reputation_score, base_price or recent"));
            ""
        }
    };
    let limit = match crate::http::pagination::parse_limit(query.limit.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            errors.push(e);
            20
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut sql = SqlBuilder::new(&format!("SELECT {} FROM agents a WHERE a.status = 'active'", prefixed_columns()));
    if let Some(cap) = query.capability.as_deref() {
        sql.push(
            " AND EXISTS (SELECT 1 FROM agent_capabilities c WHERE c.agent_id = a.id AND c.capability = ?)",
            [Arg::Text(cap.trim().to_ascii_lowercase())],
        );
    }
    if let Some(p) = min_price {
        sql.push(" AND a.base_price >= ?", [Arg::Int(p.units())]);
    }
    if let Some(p) = max_price {
        sql.push(" AND a.base_price <= ?", [Arg::Int(p.units())]);
    }
    if let Some(r) = min_reputation {
        sql.push(" AND a.reputation_centi >= ?", [Arg::Int(r)]);
    }
    sql.push(&format!(" ORDER BY {order}, a.id LIMIT ?"), [Arg::Int(limit)]);
    Ok(sql.query_as().fetch_all(db.pool()).await?)
}

/// "4.5" → 450 hundredths; at most two decimals, 0–5.
fn parse_reputation(s: &str) -> Option<i64> {
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let centi = whole.parse::<i64>().ok()?.checked_mul(100)? + format!("{frac:0<2}").parse::<i64>().ok()?;
    (centi <= 500).then_some(centi)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CapabilitySummary {
    pub name: String,
    pub agent_count: i64,
    /// Mean `base_price` of the active agents offering it.
    pub avg_price: Amount,
}

pub async fn capabilities(db: &Db) -> ApiResult<Vec<CapabilitySummary>> {
    let rows = store::capabilities(db).await?;
    Ok(rows
        .into_iter()
        .map(|r| CapabilitySummary {
            // The mean of amounts is within their range, so it fits an Amount again.
            avg_price: i64::try_from((r.price_sum + i128::from(r.agent_count) / 2) / i128::from(r.agent_count.max(1)))
                .ok()
                .and_then(Amount::from_units)
                .unwrap_or_default(),
            name: r.capability,
            agent_count: r.agent_count,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse_reputation;

    #[test]
    fn reputation_filter_parses_hundredths() {
        assert_eq!(parse_reputation("4.5"), Some(450));
        assert_eq!(parse_reputation("3"), Some(300));
        assert_eq!(parse_reputation("0.05"), Some(5));
        assert_eq!(parse_reputation("5.01"), None);
        assert_eq!(parse_reputation("4.555"), None);
        assert_eq!(parse_reputation("-1"), None);
        assert_eq!(parse_reputation("abc"), None);
    }
}
