//! What every list shares: `limit` (default 100, at most 1,000), an opaque `cursor`, and the
//! answer `{"items": [...], "next": <cursor or null>}`.
//!
//! A cursor is the base64url of the last id the page examined; clients pass `next` back as it
//! is. Follow `next` until it is null: a filtered page may hold fewer items than `limit` (see
//! `store::pages`), and records added meanwhile come in later pages, never twice.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::store::PageRequest;

/// Items per page when the request does not say.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The most items a page may hold.
pub(crate) const MAX_LIMIT: usize = 1000;

/// An opaque position in a list, as the previous page's `next` gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor(u64);

impl Cursor {
    fn encode(id: u64) -> String {
        URL_SAFE_NO_PAD.encode(id.to_be_bytes())
    }

    fn decode(s: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        Some(Self(u64::from_be_bytes(bytes.try_into().ok()?)))
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::decode(&s)
            .ok_or_else(|| serde::de::Error::custom("not a cursor this API gave (use `next`)"))
    }
}

/// Which page: `limit` checked against its bounds, the cursor opened.
pub(crate) fn request(limit: Option<u32>, cursor: Option<Cursor>) -> Result<PageRequest, ApiError> {
    let limit = match limit.map(|n| n as usize) {
        None => DEFAULT_LIMIT,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(_) => {
            return Err(ApiError::bad_request(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
    };
    Ok(PageRequest {
        after: cursor.map(|c| c.0),
        limit,
    })
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    /// The items, oldest first.
    pub(crate) items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` at the end of the list.
    pub(crate) next: Option<String>,
}

impl<V> Page<V> {
    /// The views of a store page.
    pub(crate) fn of<T: Into<V>>(page: crate::store::Page<T>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next: page.next.map(Cursor::encode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        let next = Cursor::encode(4_242);
        assert_eq!(Cursor::decode(&next), Some(Cursor(4_242)));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode([1, 2, 3])), None);
    }

    #[test]
    fn a_limit_outside_one_to_the_maximum_is_refused_naming_limit() {
        assert_eq!(
            request(None, None).map(|r| r.limit).ok(),
            Some(DEFAULT_LIMIT)
        );
        assert_eq!(request(Some(1000), None).map(|r| r.limit).ok(), Some(1000));
        for bad in [0, 1001] {
            match request(Some(bad), None) {
                Err(ApiError::BadRequest { field, .. }) => assert_eq!(field, "limit"),
                other => panic!("limit {bad}: {other:?}"),
            }
        }
    }
}
