//! The tenant list: search by name, slug, owner or member email; filter by status and plan;
//! sort; keyset pagination. Every variant is one indexed query (see the migration's indexes),
//! so a page costs the same on page 1 and page 4,000 of 100,000 tenants.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use tenantkit_db::PlatformTx;
use tenantkit_kernel::TenantId;
use tenantkit_tenancy::TenantStatus;
use uuid::Uuid;

use crate::PlatformError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TenantSort {
    #[default]
    Newest,
    Oldest,
    Name,
}

impl TenantSort {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "newest" | "" => Some(Self::Newest),
            "oldest" => Some(Self::Oldest),
            "name" => Some(Self::Name),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Oldest => "oldest",
            Self::Name => "name",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TenantQuery {
    /// Part of a name or slug, or the start of a member's email.
    pub text: Option<String>,
    pub status: Option<TenantStatus>,
    pub plan: Option<String>,
    pub sort: TenantSort,
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TenantRow {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub status: TenantStatus,
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub owner_email: Option<String>,
    pub members: i64,
    /// The database's lowercase of the name: what name order and the name cursor compare.
    #[serde(skip)]
    name_key: String,
}

pub struct TenantPage {
    pub rows: Vec<TenantRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// Where a page starts: the sort key of the last row shown and its id (ties broken by id).
/// Public for the fuzz targets (tests/fuzz), which check that it round-trips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    Time(DateTime<Utc>, Uuid),
    Name(String, Uuid),
}

impl Cursor {
    fn of(sort: TenantSort, row: &TenantRow) -> String {
        match sort {
            TenantSort::Name => Self::Name(row.name_key.clone(), row.id.as_uuid()),
            _ => Self::Time(row.created_at, row.id.as_uuid()),
        }
        .encode()
    }

    /// The page link's opaque text (the `next` of a [`TenantPage`]).
    pub fn encode(&self) -> String {
        let text = match self {
            Self::Name(name, id) => format!("n|{id}|{name}"),
            Self::Time(at, id) => format!("t|{id}|{}", at.timestamp_micros()),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn parse(sort: TenantSort, text: &str) -> Option<Self> {
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let mut parts = decoded.splitn(3, '|');
        let (kind, id, key) = (parts.next()?, parts.next()?, parts.next()?);
        let id = Uuid::parse_str(id).ok()?;
        match (kind, sort) {
            ("n", TenantSort::Name) => Some(Self::Name(key.to_owned(), id)),
            ("t", TenantSort::Newest | TenantSort::Oldest) => Some(Self::Time(
                DateTime::from_timestamp_micros(key.parse().ok()?)?,
                id,
            )),
            _ => None,
        }
    }
}

/// The tenant with this slug (slugs are lowercase), if any.
pub async fn find_by_slug(
    tx: &mut PlatformTx,
    slug: &str,
) -> Result<Option<TenantId>, PlatformError> {
    Ok(sqlx::query_scalar!(
        r#"-- cross-tenant: a platform admin finds any tenant by its slug, by tenants_slug_key
           select id as "id: TenantId" from tenants where slug = lower($1)"#,
        slug
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// `LIKE` patterns match these literally.
pub(crate) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page query: `$1` status, `$2` plan, `$3` the search (LIKE-escaped; null without one),
/// `$4`/`$5` the cursor, `$6` the page size. A search narrows to the ids that
/// `tenantkit_directory_matches` finds on its indexes (see the directory-search migration:
/// under row level security this query could not use them itself).
macro_rules! tenant_page {
    (searched, $order:tt, $($arg:expr),*) => {
        tenant_page!(@query " and t.id in (select tenantkit_directory_matches($3)) ", $order, $($arg),*)
    };
    (plain, $order:tt, $($arg:expr),*) => {
        tenant_page!(@query " and $3::text is null ", $order, $($arg),*)
    };
    (@query $search:tt, $order:tt, $($arg:expr),*) => {
        sqlx::query_as!(
            TenantRow,
            r#"select t.id as "id: TenantId", t.slug, t.name, t.status as "status: TenantStatus",
                      t.plan, t.created_at,
                      (select u.email from memberships m join users u on u.id = m.user_id
                        where m.tenant_id = t.id and m.role = 'owner'
                        order by m.created_at limit 1) as owner_email,
                      (select count(*) from memberships m where m.tenant_id = t.id) as "members!",
                      t.name_key as "name_key!"
               from tenants t
               where ($1::text is null or t.status = $1) and ($2::text is null or t.plan = $2) "#
                + $search + $order,
            $($arg),*
        )
    };
}

pub async fn search(tx: &mut PlatformTx, query: &TenantQuery) -> Result<TenantPage, PlatformError> {
    let limit = query.limit.clamp(1, 200);
    let text = query
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.chars().count() > 200) {
        return Err(PlatformError::invalid(
            "q",
            "Search for at most 200 characters.",
        ));
    }
    // Lowercased by the database, as the names it is compared with are.
    let search = text.map(escape_like);
    let cursor = match &query.after {
        Some(after) => Some(
            Cursor::parse(query.sort, after)
                .ok_or_else(|| PlatformError::invalid("after", "This page link is not valid."))?,
        ),
        None => None,
    };
    let status = query.status.map(TenantStatus::as_str);
    let plan = query.plan.as_deref();
    let (time, name, id) = match cursor {
        Some(Cursor::Time(at, id)) => (Some(at), None, Some(id)),
        Some(Cursor::Name(name, id)) => (None, Some(name), Some(id)),
        None => (None, None, None),
    };
    let fetch = limit + 1;
    let conn = tx.conn();
    let mut rows = match (query.sort, text.is_some()) {
        (TenantSort::Newest, false) => {
            tenant_page!(
                plain,
                r#"
            and ($4::timestamptz is null or (t.created_at, t.id) < ($4, $5))
            order by t.created_at desc, t.id desc limit $6"#,
                status,
                plan,
                search,
                time,
                id,
                fetch
            )
            .fetch_all(conn)
            .await?
        }
        (TenantSort::Newest, true) => {
            tenant_page!(
                searched,
                r#"
            and ($4::timestamptz is null or (t.created_at, t.id) < ($4, $5))
            order by t.created_at desc, t.id desc limit $6"#,
                status,
                plan,
                search,
                time,
                id,
                fetch
            )
            .fetch_all(conn)
            .await?
        }
        (TenantSort::Oldest, false) => {
            tenant_page!(
                plain,
                r#"
            and ($4::timestamptz is null or (t.created_at, t.id) > ($4, $5))
            order by t.created_at, t.id limit $6"#,
                status,
                plan,
                search,
                time,
                id,
                fetch
            )
            .fetch_all(conn)
            .await?
        }
        (TenantSort::Oldest, true) => {
            tenant_page!(
                searched,
                r#"
            and ($4::timestamptz is null or (t.created_at, t.id) > ($4, $5))
            order by t.created_at, t.id limit $6"#,
                status,
                plan,
                search,
                time,
                id,
                fetch
            )
            .fetch_all(conn)
            .await?
        }
        (TenantSort::Name, false) => {
            tenant_page!(
                plain,
                r#"
            and ($4::text is null or (t.name_key, t.id) > ($4, $5))
            order by t.name_key, t.id limit $6"#,
                status,
                plan,
                search,
                name,
                id,
                fetch
            )
            .fetch_all(conn)
            .await?
        }
        (TenantSort::Name, true) => {
            tenant_page!(
                searched,
                r#"
            and ($4::text is null or (t.name_key, t.id) > ($4, $5))
            order by t.name_key, t.id limit $6"#,
                status,
                plan,
                search,
                name,
                id,
                fetch
            )
            .fetch_all(conn)
            .await?
        }
    };
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| Cursor::of(query.sort, row))
    } else {
        None
    };
    Ok(TenantPage { rows, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn cursors_belong_to_their_sort() {
        let row = TenantRow {
            id: TenantId::new(),
            slug: "acme".into(),
            name: "Acme | Labs".into(),
            status: TenantStatus::Active,
            plan: "free".into(),
            created_at: Utc::now(),
            owner_email: None,
            members: 1,
            name_key: "acme | labs".into(),
        };
        let by_name = Cursor::of(TenantSort::Name, &row);
        assert!(matches!(
            Cursor::parse(TenantSort::Name, &by_name),
            Some(Cursor::Name(name, _)) if name == "acme | labs"
        ));
        assert!(Cursor::parse(TenantSort::Newest, &by_name).is_none());
        let by_time = Cursor::of(TenantSort::Newest, &row);
        assert!(matches!(
            Cursor::parse(TenantSort::Oldest, &by_time),
            Some(Cursor::Time(at, _)) if at.timestamp_micros() == row.created_at.timestamp_micros()
        ));
        assert!(Cursor::parse(TenantSort::Newest, "not base64!").is_none());
    }
}
