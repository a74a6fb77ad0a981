//! AIP-158 pagination: page sizes and opaque page tokens bound to the query that issued them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::ServiceError;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Validates `page_size`: 0 means the default, above the maximum is clamped, negative is invalid.
pub fn page_size(domain: &str, requested: i32) -> Result<u64, ServiceError> {
    match requested {
        size if size < 0 => Err(ServiceError::invalid_field(
            domain,
            "page_size",
            "must not be negative",
        )),
        0 => Ok(DEFAULT_PAGE_SIZE),
        size => Ok((size as u64).min(MAX_PAGE_SIZE)),
    }
}

/// The position after which the next page starts, plus a digest of the query it belongs to, so a
/// token cannot be replayed against a different filter.
pub struct PageToken;

impl PageToken {
    pub fn encode(query_digest: &str, cursor: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{cursor}", &query_digest[..16]))
    }

    /// Returns the cursor, `None` for an empty token.
    pub fn decode(
        domain: &str,
        query_digest: &str,
        token: &str,
    ) -> Result<Option<String>, ServiceError> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            ServiceError::invalid_field(domain, "page_token", "is not a token this query issued")
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (digest, cursor) = text.split_once('|').ok_or_else(invalid)?;
        if digest != &query_digest[..16] {
            return Err(invalid());
        }
        Ok(Some(cursor.to_owned()))
    }

    /// A digest of the query's filter fields, in a fixed order.
    pub fn query_digest(parts: &[&str]) -> String {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

/// Decodes a token whose cursor is a UUID (the last id of the previous page).
pub fn decode_uuid_cursor(
    domain: &str,
    query_digest: &str,
    token: &str,
) -> Result<Option<uuid::Uuid>, ServiceError> {
    PageToken::decode(domain, query_digest, token)?
        .map(|cursor| {
            crate::ids::parse_uuid_text(&cursor).ok_or_else(|| {
                ServiceError::invalid_field(
                    domain,
                    "page_token",
                    "is not a token this query issued",
                )
            })
        })
        .transpose()
}

/// Given rows fetched with `limit + 1`, drops the extra row and returns the next page token (empty
/// on the last page), made from the last kept row's cursor.
pub fn finish_page<T>(
    rows: &mut Vec<T>,
    limit: u64,
    query_digest: &str,
    cursor: impl Fn(&T) -> String,
) -> String {
    if rows.len() as u64 <= limit {
        return String::new();
    }
    rows.truncate(limit as usize);
    rows.last()
        .map(|last| PageToken::encode(query_digest, &cursor(last)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_another_query() {
        let digest = PageToken::query_digest(&["owner", "CREDITS"]);
        let token = PageToken::encode(&digest, "cursor-1");
        assert_eq!(
            PageToken::decode("d", &digest, &token)
                .ok()
                .flatten()
                .as_deref(),
            Some("cursor-1")
        );
        let other = PageToken::query_digest(&["owner", "USD"]);
        assert!(PageToken::decode("d", &other, &token).is_err());
        assert!(PageToken::decode("d", &digest, "!!!").is_err());
        assert_eq!(PageToken::decode("d", &digest, "").ok(), Some(None));
    }

    #[test]
    fn a_page_fetched_with_one_extra_row_yields_the_next_token() {
        let digest = PageToken::query_digest(&["rows"]);
        let mut rows = vec![1, 2, 3];
        let token = finish_page(&mut rows, 2, &digest, |row| row.to_string());
        assert_eq!(rows, [1, 2]);
        assert_eq!(
            PageToken::decode("d", &digest, &token)
                .ok()
                .flatten()
                .as_deref(),
            Some("2")
        );
        let mut last = vec![1, 2];
        assert_eq!(
            finish_page(&mut last, 2, &digest, |row| row.to_string()),
            ""
        );
        let uuid = uuid::Uuid::new_v4();
        let token = PageToken::encode(&digest, &uuid.to_string());
        assert_eq!(
            decode_uuid_cursor("d", &digest, &token).ok(),
            Some(Some(uuid))
        );
        let not_uuid = PageToken::encode(&digest, "seven");
        assert!(decode_uuid_cursor("d", &digest, &not_uuid).is_err());
    }

    #[test]
    fn page_size_defaults_clamps_and_refuses_negatives() {
        assert_eq!(page_size("d", 0).ok(), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size("d", 5).ok(), Some(5));
        assert_eq!(page_size("d", 100_000).ok(), Some(MAX_PAGE_SIZE));
        assert!(page_size("d", -1).is_err());
    }
}
