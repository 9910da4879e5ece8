//! `limit` (1–100, default 20), `cursor` (opaque base64url) and `offset` (ignored when a cursor
//! is given) → `meta.pagination = {total_count, cursor, has_more}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::envelope::Pagination;
use crate::error::{ApiError, ApiResult, FieldError};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

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

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>, offset: Option<&str>) -> ApiResult<PageRequest> {
        let mut errors = Vec::new();
        let limit = parse_limit(limit).unwrap_or_else(|e| {
            errors.push(e);
            DEFAULT_LIMIT
        });
        let offset = match (cursor, offset) {
            (Some(c), _) => decode_cursor(c).unwrap_or_else(|| {
                errors.push(FieldError::new("cursor", "is not a cursor this server issued"));
                0
            }),
            (None, Some(o)) => match o.trim().parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => {
                    errors.push(FieldError::new("offset", "must be a non-negative integer"));
                    0
                }
            },
            (None, None) => 0,
        };
        if errors.is_empty() { Ok(PageRequest { limit, offset }) } else { Err(ApiError::validation(errors)) }
    }

    pub fn meta(&self, returned: usize, total_count: i64) -> Pagination {
        let next = self.offset + returned as i64;
        let has_more = next < total_count;
        Pagination { total_count, cursor: has_more.then(|| encode_cursor(next)), has_more }
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
    }
}
