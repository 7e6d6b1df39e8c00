//! Migrations, run as the schema owner (never as the application role).
//! The job queue's tables come from apalis's own migrations, kept in their own history table
//! inside the `apalis` schema so the two histories never mix.

use sqlx::{PgPool, migrate::Migrator};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The application role may use the queue's tables and functions, including ones a later
/// apalis release adds (default privileges).
const QUEUE_GRANTS: &[&str] = &[
    "grant usage on schema apalis to tenantkit_app",
    "grant select, insert, update, delete on all tables in schema apalis to tenantkit_app",
    "grant execute on all functions in schema apalis to tenantkit_app",
    "alter default privileges in schema apalis grant select, insert, update, delete on tables to tenantkit_app",
    "alter default privileges in schema apalis grant execute on functions to tenantkit_app",
];

/// Replaces parts of apalis's schema that perform badly (see the file); idempotent.
const QUEUE_TUNING: &str = include_str!("../queue_tuning.sql");

pub async fn run(owner_pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(owner_pool).await?;
    let mut queue = apalis_postgres::PostgresStorage::migrations();
    queue.create_schema("apalis");
    queue.dangerous_set_table_name("apalis._sqlx_migrations");
    queue.run(owner_pool).await?;
    sqlx::raw_sql(QUEUE_TUNING).execute(owner_pool).await?;
    for grant in QUEUE_GRANTS {
        sqlx::query(*grant).execute(owner_pool).await?;
    }
    Ok(())
}
