//! File listing cursors (storage `FileCursor`): base64url JSON handed to clients and read back.
//!
//! * Any text either is refused as a cursor or gives one that, written again, reads back the
//!   same (unless the rewrite outgrows the limit: a client's `"id"` in 32-digit form is written
//!   back with hyphens).
//! * Every cursor we write is base64url and reads back as itself unless it is longer than the
//!   parser takes (2048 bytes); a cursor after a real file (a valid name) always reads back.

use arbitrary::Unstructured;
use tenantkit_storage::{FileCursor, FileName};

use crate::input::{choice, is_base64url, number, string, text, uuid};

const MAX_CURSOR_LEN: usize = 2048;

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    match choice(&mut u, 2) {
        0 => {
            let text = text(u.take_rest());
            match FileCursor::parse(&text) {
                Ok(cursor) => round_trip(&cursor),
                Err(error) => assert_eq!(error.field, "cursor"),
            }
        }
        _ => {
            let id = uuid(&mut u);
            let cursor = match choice(&mut u, 3) {
                0 => FileCursor::Newest { id },
                1 => FileCursor::Size {
                    size: number(&mut u),
                    id,
                },
                _ => FileCursor::Name {
                    name: string(&mut u),
                    id,
                },
            };
            round_trip(&cursor);
        }
    }
}

fn round_trip(cursor: &FileCursor) {
    let text = cursor.to_string();
    assert!(is_base64url(&text), "{text:?}");
    let read = FileCursor::parse(&text);
    if text.len() <= MAX_CURSOR_LEN {
        assert_eq!(read.as_ref(), Ok(cursor), "{text:?}");
    } else {
        assert!(read.is_err());
    }
    if let FileCursor::Name { name, .. } = cursor
        && FileName::parse(name).is_ok()
    {
        assert!(
            text.len() <= MAX_CURSOR_LEN,
            "the cursor after {name:?} is too long"
        );
    }
}
