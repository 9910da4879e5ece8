//! The marketplace views' parameters and shapes: the paginated list, discovery with filters,
//! sorting and search (`finder` runs the query), capabilities (from `listing`'s counters).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::finder::{self, Filters, PageSpec, SortBy};
use super::model::AgentRow;
use super::{search, store};
use crate::db::Db;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::envelope::Pagination;
use crate::http::keyset::Cursor;
use crate::money::Amount;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only agents offering this capability.
    pub capability: Option<String>,
    /// Words matched in name, description and capabilities (every word must match); results
    /// ranked by relevance: every word in the name first, then every word in the name or
    /// capabilities, then the rest, newest first within each.
    pub q: Option<String>,
    pub limit: Option<String>,
    /// Opaque keyset cursor from `meta.pagination.cursor`.
    pub cursor: Option<String>,
    /// Rows to skip when no cursor is given (0–1,000,000,000; costs what it skips: prefer the cursor).
    pub offset: Option<String>,
}

/// A page of marketplace agents with its pagination block.
pub struct AgentPage {
    pub rows: Vec<AgentRow>,
    pub pagination: Pagination,
}

/// Active agents, newest first (best match first with `q`).
pub async fn list(db: &Db, query: &ListQuery) -> ApiResult<AgentPage> {
    let filters = Filters {
        capability: capability_filter(query.capability.as_deref()),
        words: words_filter(query.q.as_deref()),
        ..Filters::default()
    };
    let sort = if filters.words.is_some() { SortBy::Relevance } else { SortBy::Recent };
    let mut errors = Vec::new();
    let page = page_spec(&mut errors, sort, query.limit.as_deref(), query.cursor.as_deref(), query.offset.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    found_page(db, &filters, sort, &page).await
}

async fn found_page(db: &Db, filters: &Filters, sort: SortBy, page: &PageSpec) -> ApiResult<AgentPage> {
    let filters = &finder::rarest_word_first(db, filters.clone()).await?;
    let found = finder::find(db, filters, sort, page).await?;
    let (total_count, total_is_estimate) = finder::count(db, filters).await?;
    let pagination = Pagination {
        total_count,
        has_more: found.next.is_some(),
        cursor: found.next.map(|key| Cursor::new(sort.scope(), key).encode()),
        total_is_estimate,
    };
    Ok(AgentPage { rows: found.rows, pagination })
}

fn capability_filter(capability: Option<&str>) -> Option<String> {
    capability.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty())
}

/// `q` absent or blank: no search. Otherwise its words (none: nothing matches).
fn words_filter(q: Option<&str>) -> Option<Vec<String>> {
    q.filter(|q| !q.trim().is_empty()).map(search::words)
}

/// `limit`, then a keyset cursor of this ordering, else a bounded offset.
fn page_spec(
    errors: &mut Vec<FieldError>,
    sort: SortBy,
    limit: Option<&str>,
    cursor: Option<&str>,
    offset: Option<&str>,
) -> PageSpec {
    let limit = crate::http::pagination::parse_limit(limit).unwrap_or_else(|e| {
        errors.push(e);
        20
    });
    let after = cursor.and_then(|c| match Cursor::decode(c, sort.scope(), &sort.keys(finder::Source::Agents)) {
        Ok(c) => Some(c.key),
        Err(e) => {
            errors.push(e);
            None
        }
    });
    let offset = match (cursor, offset) {
        (None, Some(o)) => crate::http::pagination::parse_offset(o).unwrap_or_else(|e| {
            errors.push(e);
            0
        }),
        _ => 0,
    };
    PageSpec { limit, after, offset }
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
    /// `reputation_score` (default; `relevance` with `q`), `base_price`, `recent`, `availability` or `relevance`.
    pub sort_by: Option<String>,
    /// Words matched in name, description and capabilities.
    pub q: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<String>,
    /// Opaque keyset cursor from `meta.pagination.cursor`.
    pub cursor: Option<String>,
    /// Rows to skip when no cursor is given (prefer the cursor).
    pub offset: Option<String>,
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

/// The first page's agents only (the task engine's reassignment picks from them).
pub async fn discover(db: &Db, query: &DiscoverQuery) -> ApiResult<Vec<AgentRow>> {
    Ok(discover_page(db, query).await?.rows)
}

pub async fn discover_page(db: &Db, query: &DiscoverQuery) -> ApiResult<AgentPage> {
    let mut errors = Vec::new();
    let mut price = |field: &str, v: &Option<String>| match v.as_deref().map(Amount::parse) {
        None => None,
        Some(Ok(a)) => Some(a.units()),
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
    let words = words_filter(query.q.as_deref());
    let sort = match query.sort_by.as_deref() {
        None if words.is_some() => SortBy::Relevance,
        None => SortBy::Reputation,
        Some(s) => SortBy::parse(s).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "sort_by",
                "must be reputation_score, base_price, recent, availability or relevance",
            ));
            SortBy::Reputation
        }),
    };
    let page = page_spec(&mut errors, sort, query.limit.as_deref(), query.cursor.as_deref(), query.offset.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let filters = Filters {
        capability: capability_filter(query.capability.as_deref()),
        words,
        min_price,
        max_price,
        min_reputation,
    };
    found_page(db, &filters, sort, &page).await
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
