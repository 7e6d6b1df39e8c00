//! The admin tenant directory's page cursors (platform `directory::Cursor`): base64url of
//! `n|<id>|<name key>` or `t|<id>|<microseconds>`.
//!
//! * A cursor is only read for the order it was made for: name cursors for name order, time
//!   cursors for newest and oldest first.
//! * Every cursor written reads back as itself (names may hold `|`), in base64url; any text
//!   read as a cursor writes back to text that reads as the same cursor.

use arbitrary::Unstructured;
use chrono::DateTime;
use tenantkit_platform::directory::{Cursor, TenantSort};

use crate::input::{choice, is_base64url, number, string, text, uuid};

const SORTS: [TenantSort; 3] = [TenantSort::Newest, TenantSort::Oldest, TenantSort::Name];

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    match choice(&mut u, 2) {
        0 => {
            let text = text(u.take_rest());
            for sort in SORTS {
                if let Some(cursor) = Cursor::parse(sort, &text) {
                    assert!(made_for(&cursor, sort));
                    assert_eq!(Cursor::parse(sort, &cursor.encode()), Some(cursor));
                }
            }
        }
        _ => {
            let id = uuid(&mut u);
            let cursor = if number::<bool>(&mut u) {
                Cursor::Name(string(&mut u), id)
            } else {
                let Some(at) = DateTime::from_timestamp_micros(number(&mut u)) else {
                    return;
                };
                Cursor::Time(at, id)
            };
            let text = cursor.encode();
            assert!(is_base64url(&text), "{text:?}");
            for sort in SORTS {
                let expected = made_for(&cursor, sort).then(|| cursor.clone());
                assert_eq!(
                    Cursor::parse(sort, &text),
                    expected,
                    "{cursor:?} for {sort:?}"
                );
            }
        }
    }
}

fn made_for(cursor: &Cursor, sort: TenantSort) -> bool {
    matches!(
        (cursor, sort),
        (Cursor::Name(..), TenantSort::Name)
            | (Cursor::Time(..), TenantSort::Newest | TenantSort::Oldest)
    )
}
