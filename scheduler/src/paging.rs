//! AIP-158 paging: page sizes and opaque page tokens for keyset paging.
//!
//! A token names the listing it belongs to, a fingerprint of the filters it was made with,
//! and the sort key and id of the last row returned. A token used with other filters, or
//! one that was tampered with, is refused with `INVALID_ARGUMENT` naming `page_token`.

use crate::error::{Error, Result};
use crate::store::{Cursor, Page};
use berth_i18n::api::Text;
use berth_i18n::text;

/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// The largest page served; larger asks are served this many.
pub const MAX_PAGE_SIZE: u32 = 5_000;

/// The page a request asks for.
pub fn page(kind: &str, filter: &impl std::hash::Hash, size: u32, token: &str) -> Result<Page> {
    let limit = match size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    Ok(Page {
        after: decode(kind, fingerprint(filter), token)?,
        limit,
    })
}

/// The token for the page after `last`, or empty when `returned < limit` (the last page).
pub fn next(
    kind: &str,
    filter: &impl std::hash::Hash,
    page: &Page,
    returned: usize,
    last: Option<Cursor>,
) -> String {
    match last {
        Some(c) if returned >= page.limit as usize => hex::encode(format!(
            "v1|{kind}|{:016x}|{}|{}",
            fingerprint(filter),
            c.key,
            c.id
        )),
        _ => String::new(),
    }
}

fn fingerprint(filter: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    // FNV-1a: stable across processes and versions, unlike the std default hasher.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    filter.hash(&mut h);
    h.finish()
}

fn decode(kind: &str, fingerprint: u64, token: &str) -> Result<Option<Cursor>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = |why: Text| Error::field("page_token", why);
    let raw = hex::decode(token).map_err(|_| bad(text!(NotOurPageToken)))?;
    let text = String::from_utf8(raw).map_err(|_| bad(text!(NotOurPageToken)))?;
    let mut parts = text.splitn(5, '|');
    let (Some("v1"), Some(k), Some(f), Some(key), Some(id)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad(text!(NotOurPageToken)));
    };
    if k != kind {
        return Err(bad(text!(OtherListing, kind = k)));
    }
    if f != format!("{fingerprint:016x}") {
        return Err(bad(text!(OtherFilters)));
    }
    let key = key.parse().map_err(|_| bad(text!(NotOurPageToken)))?;
    Ok(Some(Cursor {
        key,
        id: id.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_belong_to_their_filters() {
        let p = page("jobs", &("acme", 1), 10, "").unwrap();
        assert_eq!((p.after.clone(), p.limit), (None, 10));
        let last = Cursor {
            key: 42,
            id: "a|b".into(),
        };
        let t = next("jobs", &("acme", 1), &p, 10, Some(last.clone()));
        let again = page("jobs", &("acme", 1), 10, &t).unwrap();
        assert_eq!(again.after, Some(last.clone()));
        let field = |r: Result<Page>| match r {
            Err(Error::Invalid(f)) => f.field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(field(page("jobs", &("other", 1), 10, &t)), "page_token");
        assert_eq!(field(page("audit", &("acme", 1), 10, &t)), "page_token");
        assert_eq!(field(page("jobs", &("acme", 1), 10, "zz")), "page_token");
        assert_eq!(
            next("jobs", &(), &p, 9, Some(last)),
            "",
            "a short page is the last"
        );
    }

    #[test]
    fn page_sizes_default_and_are_capped() {
        assert_eq!(page("j", &(), 0, "").unwrap().limit, DEFAULT_PAGE_SIZE);
        assert_eq!(page("j", &(), 99_999, "").unwrap().limit, MAX_PAGE_SIZE);
    }
}
