//! `limit` (1–100, default 20), `cursor` (opaque base64url) and `offset` (ignored when a cursor
//! is given) → `meta.pagination = {total_count, cursor, has_more}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::envelope::Pagination;
use crate::error::{ApiError, ApiResult, FieldError};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
/// The deepest an offset (or page number × page size) may reach: far past any list a person
/// pages through, and far from where `OFFSET` arithmetic could overflow.
pub const MAX_OFFSET: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub offset: i64,
}

pub fn parse_limit(limit: Option<&str>) -> Result<i64, FieldError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(FieldError::new("limit", "must be an integer from 1 to 100")),
        },
    }
}

/// An `offset` parameter: 0–`MAX_OFFSET`.
pub fn parse_offset(offset: &str) -> Result<i64, FieldError> {
    match offset.trim().parse::<i64>() {
        Ok(n) if (0..=MAX_OFFSET).contains(&n) => Ok(n),
        _ => Err(FieldError::new("offset", "must be an integer from 0 to 1000000000")),
    }
}

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>, offset: Option<&str>) -> ApiResult<PageRequest> {
        let mut errors = Vec::new();
        let limit = parse_limit(limit).unwrap_or_else(|e| {
            errors.push(e);
            DEFAULT_LIMIT
        });
        let offset = match (cursor, offset) {
            (Some(c), _) => decode_cursor(c).filter(|n| *n <= MAX_OFFSET).unwrap_or_else(|| {
                errors.push(FieldError::new("cursor", "is not a cursor this server issued"));
                0
            }),
            (None, Some(o)) => parse_offset(o).unwrap_or_else(|e| {
                errors.push(e);
                0
            }),
            (None, None) => 0,
        };
        if errors.is_empty() { Ok(PageRequest { limit, offset }) } else { Err(ApiError::validation(errors)) }
    }

    pub fn meta(&self, returned: usize, total_count: i64) -> Pagination {
        let next = self.offset + returned as i64;
        let has_more = next < total_count;
        Pagination { total_count, cursor: has_more.then(|| encode_cursor(next)), has_more, total_is_estimate: false }
    }
}

/// The offset of a 1-based page of `per_page` rows, or an error naming `page`.
pub fn page_offset(page: Option<&str>, per_page: i64) -> Result<(i64, i64), FieldError> {
    let page = match page.map(|p| p.trim().parse::<i64>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        _ => return Err(FieldError::new("page", "must be an integer ≥ 1")),
    };
    match (page - 1).checked_mul(per_page) {
        Some(offset) if offset <= MAX_OFFSET => Ok((page, offset)),
        _ => Err(FieldError::new("page", "is beyond the last page this server serves")),
    }
}

fn encode_cursor(offset: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("o:")?.parse::<i64>().ok().filter(|n| *n >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let page = PageRequest::parse(Some("2"), None, Some("4")).unwrap();
        assert_eq!(page, PageRequest { limit: 2, offset: 4 });
        let meta = page.meta(2, 10);
        assert!(meta.has_more);
        let next = PageRequest::parse(Some("2"), meta.cursor.as_deref(), Some("999")).unwrap();
        assert_eq!(next.offset, 6, "a cursor wins over offset");
        assert!(!PageRequest { limit: 2, offset: 8 }.meta(2, 10).has_more);
        assert!(PageRequest::parse(None, Some("!!"), None).is_err());
        assert!(PageRequest::parse(Some("0"), None, None).is_err());
        assert!(PageRequest::parse(Some("101"), None, None).is_err());
        assert!(PageRequest::parse(None, None, Some("-1")).is_err());
        assert!(PageRequest::parse(None, None, Some("100000000000000000")).is_err());
        assert!(PageRequest::parse(None, Some(&encode_cursor(i64::MAX)), None).is_err());
        assert_eq!(page_offset(Some("3"), 20), Ok((3, 40)));
        assert!(page_offset(Some("100000000000000000"), 100).is_err(), "no overflow, no negative OFFSET");
        assert!(page_offset(Some("0"), 20).is_err());
    }
}
