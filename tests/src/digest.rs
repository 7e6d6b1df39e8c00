//! Digests of tables (name, row count, hash of the rows), to show that something left the
//! database as it was.

use std::collections::BTreeSet;

/// One table: its name, its row count and a hash of its rows.
pub type TableDigest = (String, i64, String);

/// The tables whose digests differ between `before` and `after`.
pub fn changed_tables(before: &[TableDigest], after: &[TableDigest]) -> Vec<String> {
    let before: BTreeSet<_> = before.iter().collect();
    let after: BTreeSet<_> = after.iter().collect();
    before
        .symmetric_difference(&after)
        .map(|(table, _, _)| table.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
