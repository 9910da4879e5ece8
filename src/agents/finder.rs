//! The one query behind `GET /agents`, `/agents/discover` and the marketplace page: filters,
//! an ordering, and a keyset page, each answered from an index range instead of a scan.
//!
//! Three shapes, chosen by the filters:
//! - a capability and no `q`: the listing (`agent_capabilities`, active agents only, sort keys
//!   copied), one index per ordering led by the capability;
//! - no capability and no `q`: `agents`, one index per ordering led by the status;
//! - `q`: the engine's full-text index (`agents::search`), ranked by tier and newest first. On
//!   SQLite a page walks each tier's matches in index order and stops after a page; PostgreSQL's
//!   GIN finds the matches unordered, so there the cost grows with the number of agents
//!   matching every word (not with the table).

use sqlx::{FromRow, Row};

use super::model::AgentRow;
use super::search;
use super::store::AGENT_COLUMNS;
use crate::db::{Arg, Db, SqlBuilder};
use crate::http::keyset::{self, Dir, KeyKind, KeyValue, SortKey, key};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Reputation, then completed tasks, then newest.
    Reputation,
    /// Cheapest first, then reputation.
    Price,
    /// Newest first.
    Recent,
    /// Agents with a callback first, then the most recently seen, then reputation.
    Availability,
    /// Best `q` match first (`search::Tier`: name, then capabilities, then description), newest
    /// first within a tier.
    Relevance,
}

impl SortBy {
    /// The names API.md and the Agrenting SDKs use, with their aliases.
    pub fn parse(s: &str) -> Option<SortBy> {
        Some(match s.trim() {
            "reputation_score" | "reputation" => SortBy::Reputation,
            "base_price" | "price" => SortBy::Price,
            "recent" | "created_at" => SortBy::Recent,
            "availability" => SortBy::Availability,
            "relevance" => SortBy::Relevance,
            _ => return None,
        })
    }

    /// The cursor scope: a cursor of one ordering is refused by another.
    pub fn scope(self) -> &'static str {
        match self {
            SortBy::Reputation => "agents.reputation",
            SortBy::Price => "agents.price",
            SortBy::Recent => "agents.recent",
            SortBy::Availability => "agents.availability",
            SortBy::Relevance => "agents.relevance",
        }
    }

    /// The ordering over `source`'s columns; its last key is the id, so it is total.
    pub fn keys(self, source: Source) -> Vec<SortKey> {
        let p = source.prefix();
        let col = |c: &str| format!("{p}{c}");
        let id = key(source.id_column(), self.id_dir(), KeyKind::Text);
        let int = |c: &str, d: Dir| key(col(c), d, KeyKind::Int);
        match self {
            SortBy::Reputation => vec![
                int("reputation_centi", Dir::Desc),
                int("tasks_completed", Dir::Desc),
                int("created_at", Dir::Desc),
                id,
            ],
            SortBy::Price => vec![int("base_price", Dir::Asc), int("reputation_centi", Dir::Desc), id],
            SortBy::Recent => vec![int("created_at", Dir::Desc), id],
            SortBy::Availability => vec![
                int("has_callback", Dir::Desc),
                // The listing stores 0 for never seen; agents keep NULL, and the index is on this
                // very expression.
                match source {
                    Source::Listing => key(col("last_seen_at"), Dir::Desc, KeyKind::Int),
                    _ => key(format!("COALESCE({p}last_seen_at, 0)"), Dir::Desc, KeyKind::Int),
                },
                int("reputation_centi", Dir::Desc),
                id,
            ],
            SortBy::Relevance => vec![int("tier", Dir::Asc), int("seq", Dir::Desc), id],
        }
    }

    fn id_dir(self) -> Dir {
        match self {
            SortBy::Price => Dir::Asc,
            _ => Dir::Desc,
        }
    }

    /// The sort key of a row (`tier` and `seq` only for `Relevance`).
    pub fn key_of(self, a: &AgentRow, (tier, seq): (i64, i64)) -> Vec<KeyValue> {
        let id = KeyValue::Text(a.id.clone());
        match self {
            SortBy::Reputation => vec![
                KeyValue::Int(a.reputation_centi),
                KeyValue::Int(a.tasks_completed),
                KeyValue::Int(a.created_at),
                id,
            ],
            SortBy::Price => vec![KeyValue::Int(a.base_price), KeyValue::Int(a.reputation_centi), id],
            SortBy::Recent => vec![KeyValue::Int(a.created_at), id],
            SortBy::Availability => vec![
                KeyValue::Int(a.has_callback),
                KeyValue::Int(a.last_seen_at.unwrap_or(0)),
                KeyValue::Int(a.reputation_centi),
                id,
            ],
            SortBy::Relevance => vec![KeyValue::Int(tier), KeyValue::Int(seq), id],
        }
    }
}

/// Where a query reads its rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Agents,
    Listing,
}

impl Source {
    fn prefix(self) -> &'static str {
        match self {
            Source::Agents => "a.",
            Source::Listing => "c.",
        }
    }
    fn id_column(self) -> &'static str {
        match self {
            Source::Agents => "a.id",
            Source::Listing => "c.agent_id",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Lower-cased.
    pub capability: Option<String>,
    /// The words of `q` (`search::words`); `Some(empty)` matches nothing.
    pub words: Option<Vec<String>>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub min_reputation: Option<i64>,
}

impl Filters {
    fn has_ranges(&self) -> bool {
        self.min_price.is_some() || self.max_price.is_some() || self.min_reputation.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct PageSpec {
    pub limit: i64,
    /// The sort key of the last row already seen (from a cursor).
    pub after: Option<Vec<KeyValue>>,
    /// Rows to skip (the `offset` parameter, when no cursor is given). Costs what it skips.
    pub offset: i64,
}

pub struct Found {
    pub rows: Vec<AgentRow>,
    /// The sort key of the last row, when more rows follow.
    pub next: Option<Vec<KeyValue>>,
}

/// `FROM … WHERE …` for the filters and the source it reads; `ordered` is the page's ordering
/// (None for a count).
fn from_where(db: &Db, f: &Filters, ordered: Option<SortBy>) -> (SqlBuilder, Source) {
    let sort = ordered.unwrap_or(SortBy::Recent);
    let (mut q, source) = match f.words.as_deref() {
        Some(words) => {
            // A bare count of matches reads the index alone.
            let alone = ordered.is_none() && f.capability.is_none() && !f.has_ranges();
            (search::matching(db.engine(), words, !alone), Source::Agents)
        }
        None if f.capability.is_some() && sort != SortBy::Relevance => {
            // A count needs the listing alone (it holds active agents only), not the agents' rows.
            let from = if ordered.is_some() {
                " FROM agent_capabilities c JOIN agents a ON a.id = c.agent_id WHERE c.capability = ?"
            } else {
                " FROM agent_capabilities c WHERE c.capability = ?"
            };
            let mut q = SqlBuilder::default();
            q.push(from, [Arg::Text(f.capability.clone().unwrap_or_default())]);
            (q, Source::Listing)
        }
        None => (SqlBuilder::new(" FROM agents a WHERE a.status = 'active'"), Source::Agents),
    };
    push_filters(&mut q, f, source, ordered);
    (q, source)
}

/// Appends the price, reputation and (when `source` is not the listing) capability filters.
fn push_filters(q: &mut SqlBuilder, f: &Filters, source: Source, ordered: Option<SortBy>) {
    if source == Source::Agents
        && let Some(cap) = &f.capability
    {
        q.push(
            " AND EXISTS (SELECT 1 FROM agent_capabilities c WHERE c.agent_id = a.id AND c.capability = ?)",
            [Arg::Text(cap.clone())],
        );
    }
    // A filter on a column the ordering does not lead with is written `+column`, which neither
    // engine matches to an index: the planner then walks the ordering's own index and stops after
    // a page of matches, instead of reading the filter's whole range and sorting it (measured on
    // SQLite at 1M agents: 0.4 ms instead of 40-120 ms). A count has no ordering to walk.
    let p = source.prefix();
    let leads = |s: SortBy| if ordered == Some(s) || ordered.is_none() { "" } else { "+" };
    let (price, reputation) = (leads(SortBy::Price), leads(SortBy::Reputation));
    if let Some(v) = f.min_price {
        q.push(&format!(" AND {price}{p}base_price >= ?"), [Arg::Int(v)]);
    }
    if let Some(v) = f.max_price {
        q.push(&format!(" AND {price}{p}base_price <= ?"), [Arg::Int(v)]);
    }
    if let Some(v) = f.min_reputation {
        q.push(&format!(" AND {reputation}{p}reputation_centi >= ?"), [Arg::Int(v)]);
    }
}

fn agent_columns(prefix: &str) -> String {
    AGENT_COLUMNS.split(", ").map(|c| format!("{prefix}{c}")).collect::<Vec<_>>().join(", ")
}

/// `f` with the words of `q` in the order the engine's search reads them best
/// (`search::rarest_first`). Any order gives the same answers; a request orders them once for
/// its page and its count.
pub async fn rarest_word_first(db: &Db, mut f: Filters) -> sqlx::Result<Filters> {
    if let Some(words) = f.words.take() {
        f.words = Some(search::rarest_first(db, words).await?);
    }
    Ok(f)
}

/// One page of agents matching `f` in `sort` order.
pub async fn find(db: &Db, f: &Filters, sort: SortBy, page: &PageSpec) -> sqlx::Result<Found> {
    if f.words.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Found { rows: Vec::new(), next: None });
    }
    let sort = if f.words.is_none() && sort == SortBy::Relevance { SortBy::Recent } else { sort };
    let skip = if page.after.is_some() { 0 } else { page.offset };
    // A ranked page skips `offset` rows as it reads them (its tiers are separate queries); any
    // other page lets the database skip them.
    let want = skip + page.limit + 1;
    let (queries, ranked) = match f.words.as_deref() {
        Some(words) if sort == SortBy::Relevance => {
            let after = match page.after.as_deref() {
                Some([KeyValue::Int(tier), KeyValue::Int(seq), KeyValue::Text(id)]) => Some((*tier, *seq, id.as_str())),
                _ => None,
            };
            let filters = |q: &mut SqlBuilder| push_filters(q, f, Source::Agents, None);
            (search::page_queries(db.engine(), words, &agent_columns("a."), &filters, after, want), true)
        }
        _ => {
            let (filtered, source) = from_where(db, f, Some(sort));
            let mut q =
                SqlBuilder { sql: format!("SELECT {}{}", agent_columns("a."), filtered.sql), args: filtered.args };
            let keys = sort.keys(source);
            if let Some(after) = &page.after {
                keyset::push_after(&mut q, &keys, after);
            }
            q.sql.push_str(&keyset::order_by(&keys));
            q.push(" LIMIT ? OFFSET ?", [Arg::Int(page.limit + 1), Arg::Int(skip)]);
            (vec![q], false)
        }
    };
    let mut raw = Vec::new();
    let mut to_skip = if ranked { skip } else { 0 };
    'queries: for q in &queries {
        let mut stream = q.query().fetch(if ranked { db.search() } else { db.pool() });
        while let Some(r) = futures_util::TryStreamExt::try_next(&mut stream).await? {
            if to_skip > 0 {
                to_skip -= 1;
                continue;
            }
            raw.push(r);
            if raw.len() as i64 > page.limit {
                break 'queries;
            }
        }
    }
    let mut rows = Vec::with_capacity(raw.len());
    let mut last_position = (0, 0);
    for (i, r) in raw.iter().enumerate() {
        if i as i64 == page.limit {
            break;
        }
        rows.push(AgentRow::from_row(r)?);
        if ranked {
            last_position = (r.try_get::<i64, _>("tier")?, r.try_get::<i64, _>("seq")?);
        }
    }
    let next = (raw.len() as i64 > page.limit).then(|| rows.last().map(|a| sort.key_of(a, last_position))).flatten();
    Ok(Found { rows, next })
}

/// Where a count with a filter checked agent by agent stops (ten pages of 20): a price or
/// reputation filter, checked entry by entry along whichever index leads the count, or (on
/// PostgreSQL) the second and later words of `q`, checked on each agent the first word finds.
/// Reaching the cap can mean reading the cap ÷ the filter's selectivity entries: at 1M agents,
/// ~11,000 entries for a price band of 9 % and a reputation band of 40 % at a cap of 1,000
/// (0.75 ms of a 1.4 ms request); for two words, 1,001 agents (18 ms).
const CHECKED_COUNT_CAP: i64 = 200;

/// How many agents match `f`, and whether that number is an estimate. From the counters when
/// only a capability (or nothing) filters; otherwise counted up to `keyset::COUNT_CAP`, or to
/// `CHECKED_COUNT_CAP` with a price or reputation filter or more than one word.
pub async fn count(db: &Db, f: &Filters) -> sqlx::Result<(i64, bool)> {
    if f.words.as_ref().is_some_and(Vec::is_empty) {
        return Ok((0, false));
    }
    if f.words.is_none() && !f.has_ranges() {
        let n = match &f.capability {
            Some(cap) => super::listing::capability_count(db.pool(), cap).await?,
            None => super::listing::active_count(db.pool()).await?,
        };
        return Ok((n, false));
    }
    let (filtered, _) = from_where(db, f, None);
    let checked = f.has_ranges() || f.words.as_ref().is_some_and(|w| w.len() > 1);
    let cap = if checked { CHECKED_COUNT_CAP } else { keyset::COUNT_CAP };
    let pool = if f.words.is_some() { db.search() } else { db.pool() };
    keyset::capped_count_in(pool, &filtered, cap).await
}
