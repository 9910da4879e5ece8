//! Keyset pagination: the next page starts after the last row's sort key, so reading page N
//! costs the same as page 1 and rows inserted meanwhile neither repeat nor hide rows.
//!
//! A `Cursor` is the list's name plus the last row's sort key (ending with its id), as JSON,
//! followed by a checksum, base64url-encoded. It is opaque to clients; anything that does not
//! decode to a cursor of the requested list and sort is refused with 422 naming `cursor`. The
//! checksum is not a signature: a forged cursor names a position in a public ordering, nothing
//! more, so the checksum's job is only to turn edits and truncation into a clean 422.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::Digest;

use super::envelope::Pagination;
use super::pagination;
use crate::db::{Arg, Db, SqlBuilder};
use crate::error::{ApiError, ApiResult, FieldError};

/// One component of a sort key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    Int(i64),
    Float(f64),
    Text(String),
}

impl KeyValue {
    fn arg(&self) -> Arg {
        match self {
            KeyValue::Int(i) => Arg::Int(*i),
            KeyValue::Float(f) => Arg::Float(*f),
            KeyValue::Text(s) => Arg::Text(s.clone()),
        }
    }
    fn json(&self) -> Value {
        match self {
            KeyValue::Int(i) => Value::from(*i),
            KeyValue::Float(f) => Value::from(*f),
            KeyValue::Text(s) => Value::from(s.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    Float,
    Text,
}

/// One column of an ordering: the SQL expression, its direction and the type of its values.
#[derive(Debug, Clone)]
pub struct SortKey {
    pub expr: String,
    pub dir: Dir,
    pub kind: KeyKind,
}

pub fn key(expr: impl Into<String>, dir: Dir, kind: KeyKind) -> SortKey {
    SortKey { expr: expr.into(), dir, kind }
}

/// The position after which the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// Which list and ordering issued it (`agents.recent`, …): a cursor of one list is refused
    /// by another.
    pub scope: String,
    pub key: Vec<KeyValue>,
}

const CHECKSUM_BYTES: usize = 6;

impl Cursor {
    pub fn new(scope: &str, key: Vec<KeyValue>) -> Cursor {
        Cursor { scope: scope.to_string(), key }
    }

    pub fn encode(&self) -> String {
        let mut items = vec![Value::from(self.scope.as_str())];
        items.extend(self.key.iter().map(KeyValue::json));
        let mut bytes = Value::Array(items).to_string().into_bytes();
        let sum = sha2::Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum[..CHECKSUM_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a cursor issued for `scope` whose key has the types `keys` expects.
    pub fn decode(text: &str, scope: &str, keys: &[SortKey]) -> Result<Cursor, FieldError> {
        let refuse = || FieldError::new("cursor", "is not a cursor this server issued for this list and sort");
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| refuse())?;
        if bytes.len() <= CHECKSUM_BYTES || bytes.len() > 2048 {
            return Err(refuse());
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        if sha2::Sha256::digest(body)[..CHECKSUM_BYTES] != *sum {
            return Err(refuse());
        }
        let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else { return Err(refuse()) };
        let Some((Value::String(found), rest)) = items.split_first() else { return Err(refuse()) };
        if found != scope || rest.len() != keys.len() {
            return Err(refuse());
        }
        let key = rest
            .iter()
            .zip(keys)
            .map(|(v, k)| match (k.kind, v) {
                (KeyKind::Int, Value::Number(n)) => n.as_i64().map(KeyValue::Int),
                (KeyKind::Float, Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()).map(KeyValue::Float),
                (KeyKind::Text, Value::String(s)) if s.len() <= 256 => Some(KeyValue::Text(s.clone())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(refuse)?;
        Ok(Cursor { scope: scope.to_string(), key })
    }
}

/// `ORDER BY` for `keys`.
pub fn order_by(keys: &[SortKey]) -> String {
    let parts: Vec<String> =
        keys.iter().map(|k| format!("{} {}", k.expr, if k.dir == Dir::Asc { "ASC" } else { "DESC" })).collect();
    format!(" ORDER BY {}", parts.join(", "))
}

/// Appends ` AND <row after `after` in the order of `keys`>`. One direction throughout: a row
/// value comparison, which both engines turn into an index range. Mixed directions: the first
/// column's bound (an index range) and the exact condition expanded column by column.
pub fn push_after(q: &mut SqlBuilder, keys: &[SortKey], after: &[KeyValue]) {
    debug_assert_eq!(keys.len(), after.len());
    let beyond = |d: Dir| if d == Dir::Asc { ">" } else { "<" };
    if keys.iter().all(|k| k.dir == keys[0].dir) {
        let columns: Vec<&str> = keys.iter().map(|k| k.expr.as_str()).collect();
        let marks = vec!["?"; keys.len()].join(", ");
        q.push(
            &format!(" AND ({}) {} ({marks})", columns.join(", "), beyond(keys[0].dir)),
            after.iter().map(KeyValue::arg),
        );
        return;
    }
    let first = &keys[0];
    q.push(&format!(" AND {} {}= ?", first.expr, beyond(first.dir)), [after[0].arg()]);
    q.push(" AND (", []);
    for i in 0..keys.len() {
        if i > 0 {
            q.push(" OR ", []);
        }
        q.push("(", []);
        for j in 0..i {
            q.push(&format!("{} = ? AND ", keys[j].expr), [after[j].arg()]);
        }
        q.push(&format!("{} {} ?)", keys[i].expr, beyond(keys[i].dir)), [after[i].arg()]);
    }
    q.push(")", []);
}

/// The query of a list with no filters of its own: `limit`, `cursor`, `offset`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// 1–100, default 20.
    pub limit: Option<String>,
    /// Opaque keyset cursor from `meta.pagination.cursor`.
    pub cursor: Option<String>,
    /// Rows to skip when no cursor is given (bounded; costs what it skips: prefer the cursor).
    pub offset: Option<String>,
}

/// Where a page starts: after a cursor's key, or (no cursor) after `offset` rows — which costs
/// what it skips, so it is bounded (`pagination::MAX_OFFSET`) and kept for the clients that send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub limit: i64,
    pub after: Option<Vec<KeyValue>>,
    pub offset: i64,
}

/// A list's ordering: the scope its cursors carry and its sort keys (ending with a unique column).
#[derive(Debug, Clone)]
pub struct Ordering {
    pub scope: &'static str,
    pub keys: Vec<SortKey>,
}

/// Counts stop here: past it `total_count` is this number with `total_is_estimate` set, so a
/// count never reads more than a page's worth of index entries times fifty.
pub const COUNT_CAP: i64 = 1000;

impl Ordering {
    /// Newest first by `<prefix>created_at`, ties by `<prefix>id` — the order of every list of
    /// records (tasks, hirings, transactions, keys, users, agents).
    pub fn newest_first(scope: &'static str, time_column: &str, id_column: &str) -> Ordering {
        Ordering {
            scope,
            keys: vec![key(time_column, Dir::Desc, KeyKind::Int), key(id_column, Dir::Desc, KeyKind::Text)],
        }
    }

    /// Parses `limit`, `cursor` and `offset` (ignored with a cursor); every bad one is named in
    /// one 422.
    pub fn page(&self, limit: Option<&str>, cursor: Option<&str>, offset: Option<&str>) -> ApiResult<Page> {
        let mut errors = Vec::new();
        let limit = pagination::parse_limit(limit).unwrap_or_else(|e| {
            errors.push(e);
            pagination::DEFAULT_LIMIT
        });
        let after = cursor.and_then(|c| match Cursor::decode(c, self.scope, &self.keys) {
            Ok(c) => Some(c.key),
            Err(e) => {
                errors.push(e);
                None
            }
        });
        let offset = match (cursor, offset) {
            (None, Some(o)) => pagination::parse_offset(o).unwrap_or_else(|e| {
                errors.push(e);
                0
            }),
            _ => 0,
        };
        if errors.is_empty() { Ok(Page { limit, after, offset }) } else { Err(ApiError::validation(errors)) }
    }

    /// Appends the cursor's condition, the ordering and `LIMIT limit + 1` (the extra row says
    /// whether more follow) to a `SELECT … WHERE …`.
    pub fn finish(&self, q: &mut SqlBuilder, page: &Page) {
        if let Some(after) = &page.after {
            push_after(q, &self.keys, after);
        }
        q.sql.push_str(&order_by(&self.keys));
        q.push(
            " LIMIT ? OFFSET ?",
            [Arg::Int(page.limit + 1), Arg::Int(if page.after.is_some() { 0 } else { page.offset })],
        );
    }

    /// Drops the extra row `finish` asked for and returns the cursor after the page's last row
    /// when more follow.
    pub fn next_cursor<T>(
        &self,
        page: &Page,
        rows: &mut Vec<T>,
        key_of: impl Fn(&T) -> Vec<KeyValue>,
    ) -> Option<String> {
        if rows.len() as i64 <= page.limit {
            return None;
        }
        rows.truncate(page.limit as usize);
        rows.last().map(|r| Cursor::new(self.scope, key_of(r)).encode())
    }

    /// One page of `SELECT <columns> <from_where>` in this order with its pagination block:
    /// the capped count, the page and the cursor after it — what every list does.
    pub async fn fetch<T>(
        &self,
        db: &Db,
        columns: &str,
        from_where: SqlBuilder,
        page: &Page,
        key_of: impl Fn(&T) -> Vec<KeyValue>,
    ) -> sqlx::Result<(Vec<T>, Pagination)>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let count = capped_count(db, &from_where).await?;
        let mut select = SqlBuilder { sql: format!("SELECT {columns}{}", from_where.sql), args: from_where.args };
        self.finish(&mut select, page);
        let mut rows: Vec<T> = select.query_as().fetch_all(db.pool()).await?;
        let pagination = self.pagination(page, &mut rows, key_of, count);
        Ok((rows, pagination))
    }

    /// The `meta.pagination` block for a fetched page (see `next_cursor`).
    pub fn pagination<T>(
        &self,
        page: &Page,
        rows: &mut Vec<T>,
        key_of: impl Fn(&T) -> Vec<KeyValue>,
        (total_count, total_is_estimate): (i64, bool),
    ) -> Pagination {
        let cursor = self.next_cursor(page, rows, key_of);
        Pagination { total_count, has_more: cursor.is_some(), cursor, total_is_estimate }
    }
}

/// The key of a row in `newest_first` order.
pub fn newest_key(created_at: i64, id: &str) -> Vec<KeyValue> {
    vec![KeyValue::Int(created_at), KeyValue::Text(id.to_string())]
}

/// How many rows ` FROM … WHERE …` selects, exact up to `COUNT_CAP`, else `(COUNT_CAP, true)`:
/// when every condition is part of the index range, the count reads at most `COUNT_CAP + 1`
/// index entries, whatever the table holds.
pub async fn capped_count(db: &Db, from_where: &SqlBuilder) -> sqlx::Result<(i64, bool)> {
    capped_count_in(db.pool(), from_where, COUNT_CAP).await
}

/// `capped_count` with another cap, on a given pool (`Db::search`).
pub async fn capped_count_in(pool: &sqlx::AnyPool, from_where: &SqlBuilder, cap: i64) -> sqlx::Result<(i64, bool)> {
    let mut q = SqlBuilder {
        sql: format!("SELECT COUNT(*) FROM (SELECT 1 AS one{}", from_where.sql),
        args: from_where.args.clone(),
    };
    q.push(" LIMIT ?) x", [Arg::Int(cap + 1)]);
    let (n,): (i64,) = q.query_as().fetch_one(pool).await?;
    Ok(if n > cap { (cap, true) } else { (n, false) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> [SortKey; 3] {
        [key("a", Dir::Desc, KeyKind::Int), key("s", Dir::Asc, KeyKind::Float), key("id", Dir::Asc, KeyKind::Text)]
    }

    #[test]
    fn cursors_round_trip_and_refuse_edits() {
        let c =
            Cursor::new("agents.test", vec![KeyValue::Int(-5), KeyValue::Float(-1.25e-7), KeyValue::Text("x".into())]);
        let text = c.encode();
        assert_eq!(Cursor::decode(&text, "agents.test", &keys()).unwrap(), c);
        assert!(Cursor::decode(&text, "agents.other", &keys()).is_err(), "another list's cursor");
        assert!(Cursor::decode(&text, "agents.test", &keys()[..2]).is_err(), "another key shape");
        // Every single-character edit is refused.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..text.len() {
            for &ch in alphabet {
                let mut edited = text.clone().into_bytes();
                if edited[i] == ch {
                    continue;
                }
                edited[i] = ch;
                let edited = String::from_utf8(edited).unwrap();
                if URL_SAFE_NO_PAD.decode(&edited).ok() == URL_SAFE_NO_PAD.decode(&text).ok() {
                    continue; // the same bytes (unused trailing bits)
                }
                assert!(Cursor::decode(&edited, "agents.test", &keys()).is_err(), "{edited}");
            }
        }
        for junk in ["", "!!", "bzo0", &text[..text.len() - 2], "W10"] {
            assert!(Cursor::decode(junk, "agents.test", &keys()).is_err(), "{junk}");
        }
    }

    #[test]
    fn mixed_directions_expand_column_by_column() {
        let mut q = SqlBuilder::new("SELECT 1 WHERE 1 = 1");
        push_after(&mut q, &keys(), &[KeyValue::Int(1), KeyValue::Float(0.5), KeyValue::Text("k".into())]);
        assert_eq!(
            q.sql,
            "SELECT 1 WHERE 1 = 1 AND a <= $1 AND ((a < $2) OR (a = $3 AND s > $4) OR (a = $5 AND s = $6 AND id > $7))"
        );
        let mut q = SqlBuilder::new("");
        push_after(&mut q, &keys()[..1], &[KeyValue::Int(1)]);
        assert_eq!(q.sql, " AND (a) < ($1)");
    }
}
