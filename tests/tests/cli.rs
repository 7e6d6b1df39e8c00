//! `tenantkit-admin`: scriptable operator commands with meaningful exit codes.

use std::process::{Command, Output};

use tenantkit_tests::{TestDb, env, process::binary};

fn admin(db: &TestDb, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary("tenantkit-admin"));
    command
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &db.app_url)
        .env("REDIS_URL", env("TENANTKIT_TEST_REDIS"));
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn create_admin_prints_a_generated_password_once_and_lists_admins() {
    let db = TestDb::new().await;
    let created = admin(&db, &["create-admin", "--email", "root@platform.test"], &[]);
    assert!(created.status.success(), "{}", text(&created));
    let output = text(&created);
    let password = output
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("a generated password is printed");
    assert_eq!(password.len(), 20);
    let hash: String =
        sqlx::query_scalar("select password_hash from users where email = 'root@platform.test'")
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert!(!hash.contains(password), "the password is stored hashed");

    // Again: refused, unless the caller says a present admin is fine (scripts/dev does).
    let again = admin(&db, &["create-admin", "--email", "root@platform.test"], &[]);
    assert!(!again.status.success());
    let tolerant = admin(
        &db,
        &[
            "create-admin",
            "--email",
            "root@platform.test",
            "--if-missing",
        ],
        &[],
    );
    assert!(tolerant.status.success(), "{}", text(&tolerant));
    assert!(
        !text(&tolerant).contains("password"),
        "no second password may be printed"
    );

    let listed = admin(&db, &["admins", "--json"], &[]);
    assert!(listed.status.success());
    let admins: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 1);
    assert_eq!(admins[0]["email"], "root@platform.test");
    assert_eq!(admins[0]["is_platform_admin"], true);
}

#[tokio::test]
async fn create_admin_refuses_bad_input_with_a_clear_error() {
    let db = TestDb::new().await;
    let bad_email = admin(&db, &["create-admin", "--email", "nope"], &[]);
    assert_eq!(bad_email.status.code(), Some(1));
    assert!(text(&bad_email).contains("email"));
    let weak = admin(
        &db,
        &["create-admin", "--email", "a@b.test"],
        &[("TENANTKIT_ADMIN_PASSWORD", "short")],
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(text(&weak).contains("password"));
}

#[tokio::test]
async fn check_fails_on_an_unsafe_configuration_and_passes_a_safe_one() {
    let db = TestDb::new().await;
    let unsafe_config = admin(&db, &["check"], &[]);
    assert_eq!(
        unsafe_config.status.code(),
        Some(1),
        "{}",
        text(&unsafe_config)
    );
    let report = text(&unsafe_config);
    for key in [
        "secret_key",
        "server.secure_cookies",
        "server.public_url",
        "database.url",
        "redis.url",
    ] {
        assert!(
            report.contains(&format!("problem: {key}")),
            "{key} not reported:\n{report}"
        );
    }

    let safe = Command::new(binary("tenantkit-admin"))
        .arg("check")
        .env_clear()
        .env("TENANTKIT_ENVIRONMENT", "production")
        .env(
            "TENANTKIT_SECRET_KEY",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        )
        .env("TENANTKIT_SERVER__PUBLIC_URL", "https://app.example.com/")
        .env(
            "DATABASE_URL",
            "postgres://app:pw@db.internal/tenantkit?sslmode=verify-full",
        )
        .env("REDIS_URL", "rediss://cache.internal:6380")
        .env("SMTP_URL", "smtps://mail.example.com")
        .output()
        .unwrap();
    assert!(safe.status.success(), "{}", text(&safe));

    let invalid = Command::new(binary("tenantkit-admin"))
        .arg("check")
        .env_clear()
        .env("TENANTKIT_SERVER__BIND", "nowhere")
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    let message = text(&invalid);
    for key in [
        "server.bind",
        "database.url is missing",
        "redis.url is missing",
    ] {
        assert!(message.contains(key), "{key} not reported:\n{message}");
    }
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let db = TestDb::new().await;
    let url = format!("{}/{}", env("TENANTKIT_TEST_PG"), db.name);
    for _ in 0..2 {
        let output = Command::new(binary("tenantkit-admin"))
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
}

/// A platform admin and two tenants (Acme with an owner and a member, Beta with an owner),
/// arranged as the owner connection; returns Acme's id.
async fn seed_tenants(db: &TestDb) -> uuid::Uuid {
    let acme = uuid::Uuid::now_v7();
    let beta = uuid::Uuid::now_v7();
    for (id, slug, name) in [(acme, "acme", "Acme Labs"), (beta, "beta", "Beta")] {
        sqlx::query("insert into tenants (id, slug, name) values ($1, $2, $3)")
            .bind(id)
            .bind(slug)
            .bind(name)
            .execute(&db.owner)
            .await
            .unwrap();
    }
    for (email, admin, tenant, role) in [
        ("root@platform.test", true, None, None),
        ("owner@acme.test", false, Some(acme), Some("owner")),
        ("ada@acme.test", false, Some(acme), Some("member")),
        ("owner@beta.test", false, Some(beta), Some("owner")),
    ] {
        let user = uuid::Uuid::now_v7();
        sqlx::query(
            "insert into users (id, email, display_name, is_platform_admin)
             values ($1, $2, 'Someone', $3)",
        )
        .bind(user)
        .bind(email)
        .bind(admin)
        .execute(&db.owner)
        .await
        .unwrap();
        if let (Some(tenant), Some(role)) = (tenant, role) {
            sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, $3)")
                .bind(tenant)
                .bind(user)
                .bind(role)
                .execute(&db.owner)
                .await
                .unwrap();
        }
    }
    acme
}

const ROOT: &str = "root@platform.test";

fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", text(output)))
}

async fn audit_rows(
    db: &TestDb,
    tenant: uuid::Uuid,
    action: &str,
) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "select u.email, e.reason from tenant_audit_events e
         left join users u on u.id = e.actor_user_id
         where e.tenant_id = $1 and e.action = $2",
    )
    .bind(tenant)
    .bind(action)
    .fetch_all(&db.owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn tenants_list_finds_a_tenant_by_a_member_email_and_show_describes_it() {
    let db = TestDb::new().await;
    let acme = seed_tenants(&db).await;

    let listed = admin(
        &db,
        &["tenants", "list", "--q", "ada@acme", "--json", "--as", ROOT],
        &[],
    );
    assert!(listed.status.success(), "{}", text(&listed));
    let page = json_of(&listed);
    let tenants = page["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "{page}");
    assert_eq!(tenants[0]["id"], acme.to_string());
    assert_eq!(tenants[0]["slug"], "acme");
    assert_eq!(tenants[0]["status"], "active");
    assert_eq!(tenants[0]["owner_email"], "owner@acme.test");
    assert_eq!(tenants[0]["members"], 2);
    assert!(page["next"].is_null());

    // Pages: one tenant at a time, the cursor leads to the other one.
    let first = json_of(&admin(
        &db,
        &[
            "tenants", "list", "--sort", "name", "--limit", "1", "--json",
        ],
        &[("TENANTKIT_ADMIN_EMAIL", ROOT)],
    ));
    assert_eq!(first["tenants"][0]["slug"], "acme");
    let next = first["next"].as_str().expect("a next page");
    let second = json_of(&admin(
        &db,
        &[
            "tenants", "list", "--sort", "name", "--limit", "1", "--after", next, "--json",
        ],
        &[("TENANTKIT_ADMIN_EMAIL", ROOT)],
    ));
    assert_eq!(second["tenants"][0]["slug"], "beta");
    assert!(second["next"].is_null());
    let bad_cursor = admin(
        &db,
        &["tenants", "list", "--after", "nonsense", "--as", ROOT],
        &[],
    );
    assert_eq!(bad_cursor.status.code(), Some(2), "{}", text(&bad_cursor));

    // The human table.
    let table = admin(&db, &["tenants", "list", "--as", ROOT], &[]);
    assert!(table.status.success(), "{}", text(&table));
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("SLUG"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("acme") && l.contains("Acme Labs")),
        "{table}"
    );

    // The bytes its files take, as the storage service keeps them.
    sqlx::query("insert into storage_usage (tenant_id, used_bytes) values ($1, 12345)")
        .bind(acme)
        .execute(&db.owner)
        .await
        .unwrap();
    for key in ["acme", acme.to_string().as_str()] {
        let shown = admin(&db, &["tenants", "show", key, "--json", "--as", ROOT], &[]);
        assert!(shown.status.success(), "{}", text(&shown));
        let view = json_of(&shown);
        assert_eq!(view["tenant"]["id"], acme.to_string());
        assert_eq!(view["tenant"]["name"], "Acme Labs");
        assert_eq!(view["tenant"]["plan"], "free");
        let members: Vec<(String, String)> = view["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["email"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            members,
            [
                ("owner@acme.test".to_owned(), "owner".to_owned()),
                ("ada@acme.test".to_owned(), "member".to_owned()),
            ]
        );
        assert_eq!(view["usage"]["seats"], 2);
        assert_eq!(view["usage"]["storage_bytes"], 12345);
    }
    let human = admin(&db, &["tenants", "show", "acme", "--as", ROOT], &[]);
    assert!(human.status.success(), "{}", text(&human));
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(
        human.contains("Acme Labs (acme)")
            && human.contains("ada@acme.test")
            && human.contains("storage 12345 bytes"),
        "{human}"
    );

    let missing = admin(&db, &["tenants", "show", "nobody", "--as", ROOT], &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(text(&missing).contains("no tenant nobody"));

    // Every read went through the audited platform path, the failed one included.
    let reads: i64 = sqlx::query_scalar(
        "select count(*) from platform_audit_events e join users u on u.id = e.actor_user_id
         where u.email = $1 and e.action = 'platform.read'",
    )
    .bind(ROOT)
    .fetch_one(&db.owner)
    .await
    .unwrap();
    assert_eq!(reads, 9);
}

#[tokio::test]
async fn suspend_and_reactivate_change_the_tenant_once_each_with_one_audit_row() {
    let db = TestDb::new().await;
    let acme = seed_tenants(&db).await;
    let status = || async {
        sqlx::query_scalar::<_, String>("select status from tenants where id = $1")
            .bind(acme)
            .fetch_one(&db.owner)
            .await
            .unwrap()
    };

    let suspended = admin(
        &db,
        &[
            "tenants",
            "suspend",
            "acme",
            "--reason",
            "unpaid invoices",
            "--as",
            ROOT,
        ],
        &[],
    );
    assert!(suspended.status.success(), "{}", text(&suspended));
    assert_eq!(status().await, "suspended");
    assert_eq!(
        audit_rows(&db, acme, "admin.tenant.suspend").await,
        [(ROOT.to_owned(), Some("unpaid invoices".to_owned()))]
    );

    // Not applicable now: exit 1 with the reason, and no second audit row.
    let again = admin(
        &db,
        &[
            "tenants",
            "suspend",
            &acme.to_string(),
            "--reason",
            "again",
            "--as",
            ROOT,
        ],
        &[],
    );
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        text(&again).contains("Only an active tenant can be suspended"),
        "{}",
        text(&again)
    );
    assert_eq!(audit_rows(&db, acme, "admin.tenant.suspend").await.len(), 1);

    let listed = json_of(&admin(
        &db,
        &[
            "tenants",
            "list",
            "--status",
            "suspended",
            "--json",
            "--as",
            ROOT,
        ],
        &[],
    ));
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 1);
    assert_eq!(listed["tenants"][0]["slug"], "acme");

    let reactivated = admin(
        &db,
        &[
            "tenants",
            "reactivate",
            &acme.to_string(),
            "--reason",
            "paid",
        ],
        &[("TENANTKIT_ADMIN_EMAIL", ROOT)],
    );
    assert!(reactivated.status.success(), "{}", text(&reactivated));
    assert_eq!(status().await, "active");
    assert_eq!(
        audit_rows(&db, acme, "admin.tenant.reactivate").await,
        [(ROOT.to_owned(), Some("paid".to_owned()))]
    );
    let again = admin(
        &db,
        &[
            "tenants",
            "reactivate",
            "acme",
            "--reason",
            "paid",
            "--as",
            ROOT,
        ],
        &[],
    );
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_eq!(
        audit_rows(&db, acme, "admin.tenant.reactivate").await.len(),
        1
    );
    assert_eq!(audit_rows(&db, acme, "admin.tenant.suspend").await.len(), 1);

    let unknown = admin(
        &db,
        &[
            "tenants", "suspend", "nobody", "--reason", "x", "--as", ROOT,
        ],
        &[],
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    let unknown_id = admin(
        &db,
        &[
            "tenants",
            "suspend",
            &uuid::Uuid::now_v7().to_string(),
            "--reason",
            "x",
            "--as",
            ROOT,
        ],
        &[],
    );
    assert_eq!(unknown_id.status.code(), Some(1), "{}", text(&unknown_id));
}

#[tokio::test]
async fn tenant_commands_need_an_acting_platform_admin() {
    let db = TestDb::new().await;
    let acme = seed_tenants(&db).await;
    // Each with the admin named in TENANTKIT_ADMIN_EMAIL, if any.
    let cases: [(&[&str], Option<&str>); 5] = [
        // A tenant's owner is no platform admin.
        (
            &[
                "tenants",
                "suspend",
                "acme",
                "--reason",
                "x",
                "--as",
                "owner@acme.test",
            ],
            None,
        ),
        (&["tenants", "list", "--json"], Some("owner@acme.test")),
        (
            &["tenants", "show", "acme", "--as", "nobody@nowhere.test"],
            None,
        ),
        // Nobody named at all.
        (&["tenants", "suspend", "acme", "--reason", "x"], None),
        // A reason must say something.
        (
            &["tenants", "suspend", "acme", "--reason", "  ", "--as", ROOT],
            None,
        ),
    ];
    for (args, acting) in cases {
        let extra_env: Vec<(&str, &str)> = acting
            .map(|email| ("TENANTKIT_ADMIN_EMAIL", email))
            .into_iter()
            .collect();
        let refused = admin(&db, args, &extra_env);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&refused)
        );
        assert!(refused.stdout.is_empty(), "{args:?}: {}", text(&refused));
    }
    let message = text(&admin(
        &db,
        &["tenants", "list", "--as", "owner@acme.test"],
        &[],
    ));
    assert!(
        message.contains("owner@acme.test") && message.contains("platform admin"),
        "{message}"
    );
    let message = text(&admin(&db, &["tenants", "list"], &[]));
    assert!(message.contains("--as"), "{message}");

    let status: String = sqlx::query_scalar("select status from tenants where id = $1")
        .bind(acme)
        .fetch_one(&db.owner)
        .await
        .unwrap();
    assert_eq!(status, "active");
    let events: i64 = sqlx::query_scalar(
        "select (select count(*) from tenant_audit_events)
              + (select count(*) from platform_audit_events)",
    )
    .fetch_one(&db.owner)
    .await
    .unwrap();
    assert_eq!(events, 0, "a refused command left an audit row");
}

#[tokio::test]
async fn admins_is_a_group_and_its_bare_form_still_lists() {
    let db = TestDb::new().await;
    let created = admin(
        &db,
        &[
            "admins",
            "create",
            "--email",
            "ops@platform.test",
            "--name",
            "Ops",
        ],
        &[("TENANTKIT_ADMIN_PASSWORD", "correct horse battery staple")],
    );
    assert!(created.status.success(), "{}", text(&created));
    assert!(
        !text(&created).contains("password"),
        "a given password is not printed"
    );
    for args in [&["admins", "--json"][..], &["admins", "list", "--json"]] {
        let listed = admin(&db, args, &[]);
        assert!(listed.status.success(), "{args:?}: {}", text(&listed));
        let admins = json_of(&listed);
        assert_eq!(admins.as_array().unwrap().len(), 1);
        assert_eq!(admins[0]["email"], "ops@platform.test");
    }
    let bare = admin(&db, &["admins"], &[]);
    assert!(bare.status.success(), "{}", text(&bare));
    assert!(String::from_utf8_lossy(&bare.stdout).contains("ops@platform.test\tOps"));
}
