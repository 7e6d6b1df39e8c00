//! Every statement on a tenant-owned table names its tenant (`tenant_id = $n`, or `id = $n` on
//! `tenants`) on top of row level security, or says in its text why it crosses tenants
//! (`-- cross-tenant: <reason>`). The policies on those tables are OR-ed, which PostgreSQL can
//! only apply as a filter: a statement that leaves its tenant to row level security alone scans
//! every tenant's rows (see `libs/tenancy/src/repo/mod.rs`).
//!
//! Checks the text of every compile-checked query, as stored in `.sqlx/` by
//! `scripts/sqlx-prepare`: a query changed without regenerating it is checked once it is.

use std::{fs, path::PathBuf};

/// The files of a folder of the workspace, by name.
fn files(folder: &str) -> Vec<PathBuf> {
    let dir = tenantkit_tests::tests_crate_dir().join("..").join(folder);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
}

/// The tenant-owned tables: those the migrations hand to `tenantkit_isolate_by_tenant` (the
/// `tenant_isolation` policy), so a new one is checked from its first query.
fn tenant_tables() -> Vec<String> {
    let mut tables = Vec::new();
    for path in files("libs/db/migrations") {
        let sql = fs::read_to_string(&path).unwrap();
        for call in sql.split("tenantkit_isolate_by_tenant('").skip(1) {
            tables.push(call[..call.find('\'').unwrap()].to_owned());
        }
    }
    tables
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Why `query` breaks the rule, or `None` when it keeps it.
fn violation(query: &str, tenant_tables: &[String]) -> Option<String> {
    let text = query
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let words: Vec<&str> = text
        .split(|c| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut tables: Vec<&str> = words
        .windows(2)
        .filter(|w| ["from", "join", "update", "into"].contains(&w[0]))
        .filter(|w| tenant_tables.iter().any(|t| t == w[1]))
        .map(|w| w[1])
        .collect();
    tables.sort_unstable();
    tables.dedup();
    // An insert of values writes the rows it names; ON CONFLICT and RETURNING see only those.
    // One that selects reads rows it does not name.
    let pure_insert = text.starts_with("insert") && !text.contains("select");
    if tables.is_empty() || pure_insert || text.contains("-- cross-tenant:") {
        return None;
    }
    let names_tenant = text.contains("tenant_id =") || text.contains("tenant_id=");
    let names_tenant_row = tables == ["tenants"] && names_id(&text);
    if names_tenant || names_tenant_row {
        return None;
    }
    Some(format!("on {}: {text}", tables.join(", ")))
}

/// `id =` or `id=` as a whole word (`t.id = $1`, not `user_id = $1`).
fn names_id(text: &str) -> bool {
    ["id =", "id="].iter().any(|pattern| {
        text.match_indices(pattern)
            .any(|(at, _)| !text[..at].ends_with(is_word_char))
    })
}

#[test]
fn every_statement_on_a_tenant_table_names_its_tenant_or_says_why_not() {
    let tables = tenant_tables();
    let mut checked = 0;
    let mut offences = Vec::new();
    for path in files(".sqlx") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("query-") && name.ends_with(".json")) {
            continue;
        }
        let data: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let query = data["query"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no query"));
        checked += 1;
        if let Some(why) = violation(query, &tables) {
            offences.push(format!("{name} {why}"));
        }
    }
    assert!(checked > 0, "no query files in .sqlx/");
    assert!(
        offences.is_empty(),
        "{} of the {checked} queries use a tenant-owned table without naming its tenant \
         (`tenant_id = $n`, or `id = $n` on tenants) or saying `-- cross-tenant: <reason>`:\n{}",
        offences.len(),
        offences.join("\n")
    );
}

#[test]
fn the_checker_tells_scoped_from_unscoped_statements() {
    let tables = tenant_tables();
    for table in ["tenants", "memberships", "api_keys", "tenant_audit_events"] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} not in {tables:?}"
        );
    }
    for unscoped in [
        "select id from api_keys where id = $1",
        "select count(*) from memberships",
        "UPDATE invitations\n  SET status = 'revoked' WHERE id = $1",
        "select t.name from memberships m join tenants t on t.id = m.tenant_id where m.user_id = $1",
        "insert into sent_emails (tenant_id, idempotency_key) select $1, $2 returning 1",
    ] {
        assert!(violation(unscoped, &tables).is_some(), "missed: {unscoped}");
    }
    for scoped in [
        "select id from api_keys where tenant_id = $1 and id = $2",
        "select slug from tenants where id = $1",
        "insert into memberships (tenant_id, user_id, role) values ($1, $2, $3)",
        "insert into sent_emails (tenant_id, idempotency_key) values ($1, $2) on conflict do nothing returning true",
        "-- cross-tenant: the user's own memberships\nselect role from memberships where user_id = $1",
        "select id from users where id = $1",
        "select count(*) from tenants_x",
    ] {
        assert_eq!(violation(scoped, &tables), None, "flagged: {scoped}");
    }
}
