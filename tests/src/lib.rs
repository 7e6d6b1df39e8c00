//! Test harness: real PostgreSQL (a fresh database per test, cloned from a migrated template),
//! real Redis (a key prefix per test), a real SMTP server, and the real application on a
//! random port. `scripts/test` starts the services and exports where they are.

pub mod account_flows;
/// The `tests` crate's folder in the checkout being tested. Read when the test runs (cargo and
/// nextest set `CARGO_MANIFEST_DIR` for it): the compile-time value is the folder of whichever
/// checkout built the binary, and a shared target cache reuses binaries across checkouts.
pub fn tests_crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub mod api;
pub mod browser;
pub mod digest;
pub mod mail;
pub mod process;
pub mod stack;
pub mod stripe;
pub mod web_client;
pub mod worker;

use std::{net::SocketAddr, time::Duration};

use figment::{Figment, providers::Serialized};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tenantkit_config::Settings;
use tenantkit_db::Database;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A response's content type, or "" when it has none.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test"))
}

/// One test's own database.
pub struct TestDb {
    pub name: String,
    /// Connected as the owner (superuser): for arranging data and inspecting the catalog.
    pub owner: PgPool,
    /// Connected as the application role: what the product uses.
    pub app: Database,
    pub app_url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let base = env("TENANTKIT_TEST_PG");
        let name = format!("test_{}", Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&format!("{base}/postgres"))
            .await
            .expect("connect as owner");
        // Cloning a template is a file copy: far faster than migrating each database.
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "create database {name} template tenantkit_template"
            )))
            .await
            .expect("clone the template database");
        admin.close().await.ok();
        let owner = PgPool::connect(&format!("{base}/{name}"))
            .await
            .expect("owner pool");
        let host = base.trim_start_matches("postgres://postgres@");
        let app_url = format!(
            "postgres://tenantkit_app:{}@{host}/{name}",
            env("TENANTKIT_TEST_APP_PASSWORD")
        );
        let app = Database::from_pool(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(20)
                .connect(&app_url)
                .await
                .expect("app pool"),
        );
        Self {
            name,
            owner,
            app,
            app_url,
        }
    }
}

/// Settings pointing at this test's database and the shared Redis/SMTP.
pub fn settings_for(db: &TestDb, overrides: &[(&str, &str)]) -> Settings {
    let mut figment = Figment::new()
        .merge(Serialized::default("environment", "test"))
        .merge(Serialized::default("server.bind", "127.0.0.1:0"))
        .merge(Serialized::default("server.shutdown_timeout_secs", 5))
        .merge(Serialized::default("database.url", db.app_url.clone()))
        .merge(Serialized::default(
            "redis.url",
            env("TENANTKIT_TEST_REDIS"),
        ))
        .merge(Serialized::default("smtp.url", env("TENANTKIT_TEST_SMTP")))
        .merge(Serialized::default(
            "smtp.from",
            "Tenantkit <no-reply@tenantkit.test>",
        ))
        .merge(Serialized::default("log.filter", "warn"))
        // Files of a test go to a folder of their own, never into the checkout.
        .merge(Serialized::default(
            "storage.local.root",
            std::env::temp_dir()
                .join(format!("tenantkit-test-files-{}", Uuid::now_v7().simple()))
                .to_string_lossy()
                .into_owned(),
        ))
        // Each test's keys live under a prefix of their own: tests share one Redis safely.
        .merge(Serialized::default(
            "redis.key_prefix",
            format!("test:{}", Uuid::now_v7().simple()),
        ));
    for (key, value) in overrides {
        figment = figment.merge(Serialized::default(key, *value));
    }
    Settings::load_from(figment).expect("valid test settings")
}

/// The password [`TestApp::sign_up`] gives each owner.
pub const OWNER_PASSWORD: &str = "correct horse battery staple";

/// The real application, served on a random port until dropped.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::new().await;
        let settings = settings_for(&db, &[]);
        Self::spawn_with(db, settings).await
    }

    pub async fn spawn_with(db: TestDb, settings: Settings) -> Self {
        let state = tenantkit_web::AppState::new(settings).expect("state");
        let app = tenantkit_web::Application::build(state)
            .await
            .expect("bind");
        let address = app.address();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            address,
            client,
            db,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Signs up an organisation through the API; returns the response body.
    pub async fn sign_up(&self, organisation: &str, email: &str) -> serde_json::Value {
        let response = self
            .post_json(
                "/api/v1/signups",
                serde_json::json!({
                    "organisation": organisation,
                    "name": "Owner",
                    "email": email,
                    "password": OWNER_PASSWORD,
                }),
            )
            .await;
        assert_eq!(
            response.status(),
            202,
            "sign-up failed: {:?}",
            response.text().await
        );
        // The API answers alike for new and existing accounts; the ids come from the database.
        let row: (Uuid, Uuid, String) = sqlx::query_as(
            "select m.tenant_id, u.id, t.slug from users u
             join memberships m on m.user_id = u.id join tenants t on t.id = m.tenant_id
             where lower(u.email) = lower($1) order by m.created_at desc limit 1",
        )
        .bind(email)
        .fetch_one(&self.db.owner)
        .await
        .expect("the signed-up owner");
        serde_json::json!({ "tenant_id": row.0, "user_id": row.1, "slug": row.2 })
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A verified platform admin, straight in the database (`label` names its email).
pub async fn platform_admin(db: &TestDb, label: &str) -> tenantkit_platform::Admin {
    let id = tenantkit_kernel::UserId::new();
    sqlx::query(
        "insert into users (id, email, display_name, is_platform_admin, email_verified_at)
         values ($1, $2, 'Platform admin', true, now())",
    )
    .bind(id.as_uuid())
    .bind(format!(
        "{label}-{}@platform.test",
        uuid::Uuid::now_v7().simple()
    ))
    .execute(&db.owner)
    .await
    .expect("create a platform admin");
    tenantkit_platform::Admin(id)
}
