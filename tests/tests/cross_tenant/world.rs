//! The application with three kinds of organisation in it: the one attacked (A), the attacker (B)
//! and, for the controls, one shaped exactly like A (C). Each has a person and an API key of every
//! role and one of every kind of thing the API and the pages name by id, every name and email
//! carrying the organisation's marker so a leak is found by a plain substring search.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tenantkit_accounts::{
    PasswordHasher, PlainPassword,
    tokens::TokenSigner,
    two_factor::{TotpSecret, code_at},
};
use tenantkit_kernel::{InvitationId, Role, TenantId, UserId};
use tenantkit_tests::{
    OWNER_PASSWORD, TestApp, TestDb,
    api::{self, Org, call},
    digest::TableDigest,
    platform_admin, settings_for,
    web_client::BrowserClient,
};
use uuid::Uuid;

/// The application, with the key its emailed invitation links are signed with.
pub struct World {
    pub app: TestApp,
    signer: TokenSigner,
}

/// Someone signed in through the pages, in one organisation with one role.
pub struct Person {
    pub id: Uuid,
    pub role: Role,
    pub browser: BrowserClient,
}

/// One organisation and everything in it that has an id.
pub struct Tenant {
    /// In every name, email, file and folder of this organisation (lowercase).
    pub marker: String,
    pub id: Uuid,
    /// Owner first, then one person of each other role.
    pub people: Vec<Person>,
    /// An API key of every role.
    pub keys: Vec<(Role, String)>,
    pub pending_invitation: Uuid,
    /// A key made through the API with a marked name.
    pub named_key: Uuid,
    /// A file in a marked folder, and one at the root.
    pub file: Uuid,
    pub photo: Uuid,
    pub file_bytes: Vec<u8>,
    pub folder: String,
    pub upload: Uuid,
    /// A dead-lettered job about this organisation (platform admins decide on those).
    pub dead_job: String,
    /// Another organisation the owner belongs to (as a member), so the pages offer a switch.
    pub second_tenant: Uuid,
    /// The owner's second session, and its key as the sessions page shows it.
    pub other_session: BrowserClient,
    pub other_session_key: String,
}

impl World {
    pub async fn spawn() -> Self {
        let db = TestDb::new().await;
        let settings = settings_for(&db, &[("rate_limit.signups_per_hour", "1000")]);
        let signer = TokenSigner::new(&settings.secret_key);
        Self {
            app: TestApp::spawn_with(db, settings).await,
            signer,
        }
    }

    pub fn browser(&self) -> BrowserClient {
        BrowserClient::new(&self.app.url(""))
    }

    /// The roles the API serves (`GET /roles`), so a new role joins the matrix by itself.
    pub async fn roles(&self) -> Vec<Role> {
        let roles: Value = self
            .app
            .get("/api/v1/roles")
            .await
            .json()
            .await
            .expect("roles");
        let roles: Vec<Role> = roles["items"]
            .as_array()
            .expect("a list of roles")
            .iter()
            .map(|r| {
                let name = r["name"].as_str().expect("a role name");
                name.parse()
                    .unwrap_or_else(|_| panic!("GET /roles serves {name:?}, unknown to Role"))
            })
            .collect();
        assert_eq!(roles.first(), Some(&Role::Owner), "owner first: {roles:?}");
        roles
    }

    /// A person with `role` in `org`: invited through the API by the owner's key, joined
    /// through the invitation page with the link the email would carry (signed in by it).
    async fn join(&self, org: &Org, owner_key: &str, marker: &str, role: Role) -> Person {
        let email = format!("{marker}.{role}-{}@api.test", Uuid::now_v7().simple());
        let invitation = self.invite(org, owner_key, &email, role).await;
        let expires_at: DateTime<Utc> =
            sqlx::query_scalar("select expires_at from invitations where id = $1")
                .bind(invitation)
                .fetch_one(&self.app.db.owner)
                .await
                .expect("the invitation");
        let token = tenantkit_tenancy::emails::invitation_token(
            &self.signer,
            TenantId::from_uuid(org.tenant),
            InvitationId::from_uuid(invitation),
            expires_at,
        );
        let browser = self.browser();
        let accept = format!("/invitations/accept?token={token}");
        let name = format!("{marker} {role}");
        let page = browser
            .submit(
                &accept,
                &accept,
                &[("name", name.as_str()), ("password", OWNER_PASSWORD)],
            )
            .await;
        assert!(page.redirects_to("/dashboard"), "{email} joins: {page:?}");
        let id: Uuid = sqlx::query_scalar("select id from users where lower(email) = lower($1)")
            .bind(&email)
            .fetch_one(&self.app.db.owner)
            .await
            .expect("the new member");
        Person { id, role, browser }
    }

    async fn invite(&self, org: &Org, owner_key: &str, email: &str, role: Role) -> Uuid {
        let (status, invitation) = call(
            &self.app,
            owner_key,
            Method::POST,
            &format!("/tenants/{}/invitations", org.tenant),
            Some(json!({ "email": email, "role": role.as_str() })),
        )
        .await;
        assert_eq!(status, 201, "invite {email}: {invitation}");
        invitation["id"].as_str().unwrap().parse().unwrap()
    }

    async fn signed_in(&self, email: &str) -> BrowserClient {
        let browser = self.browser();
        let page = browser.log_in(email, OWNER_PASSWORD).await;
        assert!(page.redirects_to("/dashboard"), "log in {email}: {page:?}");
        browser
    }

    /// An organisation named `marker` (capitalised) with everything that has an id.
    pub async fn tenant(&self, marker: &str, roles: &[Role]) -> Tenant {
        let app = &self.app;
        let org = api::org(app, &capitalised(marker)).await;
        // Room for every role and the pending invitation; calls beyond any plan's allowance;
        // the audit export, so its page link and operation are live.
        sqlx::query(
            "update tenants set entitlement_overrides =
               '{\"seats\": 50, \"api_requests_per_minute\": 1000000, \"features\": [\"audit_export\"]}'
             where id = $1",
        )
        .bind(org.tenant)
        .execute(&app.db.owner)
        .await
        .expect("entitlement overrides");
        let mut keys = Vec::new();
        for role in roles {
            keys.push((*role, api::key(app, &org, *role).await));
        }
        let owner_key = keys[0].1.clone();
        let mut people = vec![Person {
            id: org.owner,
            role: Role::Owner,
            browser: self.signed_in(&org.email).await,
        }];
        for role in &roles[1..] {
            people.push(self.join(&org, &owner_key, marker, *role).await);
        }
        let pending_invitation = self
            .invite(
                &org,
                &owner_key,
                &format!("{marker}.pending-{}@api.test", Uuid::now_v7().simple()),
                Role::Member,
            )
            .await;
        let base = format!("/tenants/{}", org.tenant);
        let (status, created) = call(
            app,
            &owner_key,
            Method::POST,
            &format!("{base}/api-keys"),
            Some(json!({ "name": format!("{marker} deploy key"), "role": "member" })),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let named_key = created["key"]["id"].as_str().unwrap().parse().unwrap();

        let folder = format!("/{marker}-docs");
        let file_bytes = format!("{marker} secret contents").into_bytes();
        let file = upload(
            app,
            &owner_key,
            org.tenant,
            &format!("{marker}-report.txt"),
            &folder,
            file_bytes.clone(),
        )
        .await;
        let photo = upload(
            app,
            &owner_key,
            org.tenant,
            &format!("{marker}-photo.png"),
            "/",
            png(),
        )
        .await;
        let (status, started) = call(
            app,
            &owner_key,
            Method::POST,
            &format!("{base}/uploads"),
            Some(json!({ "name": format!("{marker}-big.bin"), "folder": folder, "size": 1000 })),
        )
        .await;
        assert_eq!(status, 201, "{started}");
        let upload = started["id"].as_str().unwrap().parse().unwrap();
        let dead_job = dead_job(&app.db, org.tenant, marker).await;

        // The owner's second session, told apart from the first on the sessions page.
        let other_session = self.signed_in(&org.email).await;
        let seen_by_first = session_keys(&people[0].browser.get("/sessions").await.body);
        let seen_by_other = session_keys(&other_session.get("/sessions").await.body);
        let other_session_key = seen_by_first
            .difference(&seen_by_other)
            .next()
            .expect("the second session is listed")
            .clone();

        // A second organisation the owner belongs to: the pages then offer to switch.
        let second = api::org(app, &format!("{}Second", capitalised(marker))).await;
        sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, 'member')")
            .bind(second.tenant)
            .bind(org.owner)
            .execute(&app.db.owner)
            .await
            .expect("membership of the second organisation");

        Tenant {
            marker: marker.to_owned(),
            id: org.tenant,
            people,
            keys,
            pending_invitation,
            named_key,
            file,
            photo,
            file_bytes,
            folder,
            upload,
            dead_job,
            second_tenant: second.tenant,
            other_session,
            other_session_key,
        }
    }

    /// A platform admin with two-factor on, signed in through the pages (the admin area and
    /// the admin API accept nothing less).
    pub async fn platform_admin(&self) -> BrowserClient {
        let admin = platform_admin(&self.app.db, "zqplatform").await;
        let hash = PasswordHasher::default()
            .hash(PlainPassword::parse(SecretString::from(OWNER_PASSWORD)).expect("a password"))
            .await
            .expect("hash");
        sqlx::query("update users set password_hash = $2 where id = $1")
            .bind(admin.0.as_uuid())
            .bind(hash.as_str())
            .execute(&self.app.db.owner)
            .await
            .expect("the admin's password");
        let secret = TotpSecret::generate();
        let mut conn = self.app.db.owner.acquire().await.expect("connection");
        let id: UserId = admin.0;
        tenantkit_accounts::repo::set_pending_totp_secret(&mut conn, id, &secret.to_base32())
            .await
            .expect("pending secret");
        let now = unix_now();
        let step = i64::try_from(now / 30).expect("time fits");
        tenantkit_accounts::repo::enable_totp(&mut conn, id, step - 100)
            .await
            .expect("enable two-factor");
        let email: String = sqlx::query_scalar("select email from users where id = $1")
            .bind(id.as_uuid())
            .fetch_one(&self.app.db.owner)
            .await
            .expect("the admin's email");
        let browser = self.browser();
        browser.log_in(&email, OWNER_PASSWORD).await;
        let code = code_at(&secret, now);
        let page = browser
            .submit("/login/two-factor", "/login/two-factor", &[("code", &code)])
            .await;
        assert!(
            page.redirects_to("/dashboard"),
            "admin two-factor: {page:?}"
        );
        browser
    }
}

impl Tenant {
    pub fn owner(&self) -> &Person {
        &self.people[0]
    }

    pub fn owner_key(&self) -> &str {
        &self.keys[0].1
    }

    /// The person with the least rights (the last role).
    pub fn least(&self) -> &Person {
        self.people.last().expect("people")
    }

    /// The person right below the owner.
    pub fn deputy(&self) -> &Person {
        &self.people[1.min(self.people.len() - 1)]
    }

    /// Every id of this organisation's things, as they may appear in a URL, a form or a body.
    pub fn ids(&self) -> Vec<String> {
        let mut uuids = vec![
            self.id,
            self.pending_invitation,
            self.named_key,
            self.file,
            self.photo,
            self.upload,
            self.second_tenant,
        ];
        uuids.extend(self.people.iter().map(|p| p.id));
        let mut ids: Vec<String> = uuids
            .iter()
            .flat_map(|u| [u.to_string(), u.simple().to_string()])
            .collect();
        ids.extend([self.dead_job.clone(), self.other_session_key.clone()]);
        ids
    }

    /// What must never show in another organisation's answers: the marker (in every name,
    /// email, file, folder and key name) and every id.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.marker.clone()];
        secrets.extend(self.ids());
        secrets
    }

    /// The first of `secrets()` in `text` (case-insensitively), ignoring `allowed` (values the
    /// request itself carried).
    pub fn leaked_in(&self, text: &str, allowed: &[String]) -> Option<String> {
        let mut text = text.to_lowercase();
        for value in allowed {
            text = text.replace(&value.to_lowercase(), "");
        }
        self.secrets()
            .into_iter()
            .find(|secret| text.contains(&secret.to_lowercase()))
    }
}

fn capitalised(marker: &str) -> String {
    let mut chars = marker.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The session keys a sessions page offers to revoke.
fn session_keys(body: &str) -> BTreeSet<String> {
    body.split("action=\"/sessions/")
        .skip(1)
        .filter_map(|rest| rest.split("/revoke\"").next().map(str::to_owned))
        .collect()
}

async fn upload(
    app: &TestApp,
    key: &str,
    tenant: Uuid,
    name: &str,
    folder: &str,
    body: Vec<u8>,
) -> Uuid {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/tenants/{tenant}/files")))
        .query(&[("name", name), ("folder", folder)])
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201, "upload {name}");
    let file: Value = response.json().await.expect("the file");
    file["id"].as_str().unwrap().parse().unwrap()
}

/// A small PNG, so the files page shows a preview (`<img src=…>`) as well as links.
fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    bytes.extend((0..64).map(|i| (i * 7 % 251) as u8));
    bytes
}

/// A job that gave up (status Killed) about `tenant`, as the admin area lists them.
pub async fn dead_job(db: &TestDb, tenant: Uuid, marker: &str) -> String {
    let id = format!("dead-{marker}-{}", Uuid::now_v7().simple());
    let job = json!({ "tenant_id": tenant, "purge_after": "2026-01-01T00:00:00Z" });
    sqlx::query(
        "insert into apalis.jobs
             (job, id, job_type, status, attempts, max_attempts, last_result, done_at)
         values (convert_to($1, 'UTF8'), $2, 'tenant.purge', 'Killed', 3, 3,
                 jsonb_build_object('Err', 'gave up'), now())",
    )
    .bind(job.to_string())
    .bind(&id)
    .execute(&db.owner)
    .await
    .expect("insert a dead job");
    id
}

/// A digest of everything `tenant` owns in the database (rows of its tenant-scoped tables, its
/// tenant rows, its people's user rows and account trail) and of the global tables a request
/// could write (the job queue, the platform trail). Equal digests: nothing of it changed.
/// `last_used_at` is left out: the owner's own key reads the API views between digests.
pub async fn digest(db: &TestDb, tenant: &Tenant) -> Vec<TableDigest> {
    let tenants = vec![tenant.id, tenant.second_tenant];
    let users: Vec<Uuid> = tenant.people.iter().map(|p| p.id).collect();
    let tables: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "select t.table_schema::text, t.table_name::text,
                exists (select 1 from information_schema.columns c
                        where c.table_schema = t.table_schema and c.table_name = t.table_name
                          and c.column_name = 'tenant_id'),
                exists (select 1 from information_schema.columns c
                        where c.table_schema = t.table_schema and c.table_name = t.table_name
                          and c.column_name = 'user_id')
         from information_schema.tables t
         where t.table_type = 'BASE TABLE' and t.table_schema in ('public', 'apalis')
         order by 1, 2",
    )
    .fetch_all(&db.owner)
    .await
    .expect("tables");
    let mut digest = Vec::new();
    for (schema, table, has_tenant, has_user) in tables {
        let filter = if has_tenant {
            "where t.tenant_id = any($1)"
        } else if schema == "public" && table == "tenants" {
            "where t.id = any($1)"
        } else if schema == "public" && table == "users" {
            "where t.id = any($2)"
        } else if has_user {
            "where t.user_id = any($2)"
        } else {
            ""
        };
        let (count, md5): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select count(*), md5(coalesce(string_agg((to_jsonb(t) - 'last_used_at')::text, '|'
                 order by (to_jsonb(t) - 'last_used_at')::text), ''))
             from {schema}.{table} t {filter}"
        )))
        .bind(&tenants)
        .bind(&users)
        .fetch_one(&db.owner)
        .await
        .unwrap_or_else(|e| panic!("digest of {schema}.{table}: {e}"));
        digest.push((format!("{schema}.{table}"), count, md5));
    }
    digest
}

/// What the owner's key and sessions see of the organisation through the API and the pages:
/// equal views before and after the attacks mean nothing changed for its people either.
pub async fn views(app: &TestApp, tenant: &Tenant) -> Vec<(String, String)> {
    let key = tenant.owner_key();
    let base = format!("/tenants/{}", tenant.id);
    let mut views = Vec::new();
    for path in [
        format!("{base}/members"),
        format!("{base}/invitations"),
        format!("{base}/api-keys"),
        format!("{base}/files"),
        format!("{base}/files?folder={}", tenant.folder),
        format!("{base}/files/{}", tenant.file),
        format!("{base}/files/{}", tenant.photo),
        format!("{base}/uploads/{}", tenant.upload),
        format!("{base}/storage"),
        format!("{base}/billing"),
        "/tenants".to_owned(),
    ] {
        let (status, mut body) = call(app, key, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        strip(&mut body, "last_used_at");
        views.push((path, body.to_string()));
    }
    let content = app
        .client
        .get(app.url(&format!("/api/v1{base}/files/{}/content", tenant.file)))
        .bearer_auth(key)
        .send()
        .await
        .expect("content");
    assert_eq!(content.status(), 200);
    let bytes = content.bytes().await.expect("bytes");
    assert_eq!(
        bytes.as_ref(),
        tenant.file_bytes.as_slice(),
        "the file's bytes"
    );
    // Both of the owner's sessions are still signed in, into the same organisation.
    for (which, browser) in [
        ("first", &tenant.owner().browser),
        ("second", &tenant.other_session),
    ] {
        let page = browser.get("/dashboard").await;
        assert_eq!(page.status, 200, "the owner's {which} session: {page:?}");
        let active = page
            .body
            .split("<span id=\"active-tenant\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_default()
            .to_owned();
        views.push((format!("active tenant of the {which} session"), active));
    }
    views
}

fn strip(value: &mut Value, field: &str) {
    match value {
        Value::Object(map) => {
            map.remove(field);
            map.values_mut().for_each(|v| strip(v, field));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip(v, field)),
        _ => {}
    }
}
