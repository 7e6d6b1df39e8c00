//! Jobs commit with the change that causes them, and emails reach a real SMTP server exactly
//! once, whatever the queue repeats.

use std::time::Duration;

use apalis::prelude::{Attempt, Data};
use tenantkit_accounts::{
    emails::{AccountEmail, AccountEmailKind, EmailSettings, deliver_account_email},
    links::Links,
};
use tenantkit_kernel::{InvitationId, TenantId};
use tenantkit_notifications::Mailer;
use tenantkit_tenancy::emails::InvitationEmail;
use tenantkit_tests::{TestApp, TestDb, mail, settings_for, worker::RunningWorker};

async fn jobs_with_key(db: &TestDb, key: &str) -> i64 {
    sqlx::query_scalar("select count(*) from apalis.jobs where idempotency_key = $1")
        .bind(key)
        .fetch_one(&db.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_exists_exactly_when_its_transaction_commits() {
    let db = TestDb::new().await;
    let tenant = TenantId::new();
    sqlx::query("insert into tenants (id, slug, name) values ($1, 'jobs', 'Jobs')")
        .bind(tenant.as_uuid())
        .execute(&db.owner)
        .await
        .unwrap();
    for round in 0..40 {
        let job = InvitationEmail {
            tenant_id: tenant,
            invitation_id: InvitationId::new(),
            operation: uuid::Uuid::now_v7(),
        };
        let key = tenantkit_jobs::Job::idempotency_key(&job);
        let mut tx = db.app.tenant(tenant).await.unwrap();
        tenantkit_jobs::enqueue(&mut tx, &job).await.unwrap();
        match round % 3 {
            0 => tx.commit().await.unwrap(),
            1 => tx.rollback().await.unwrap(),
            _ => drop(tx), // a cancelled request: the transaction is dropped unfinished
        }
        let expected = i64::from(round % 3 == 0);
        assert_eq!(jobs_with_key(&db, &key).await, expected, "round {round}");
    }
}

#[tokio::test]
async fn a_job_cannot_be_enqueued_in_another_tenants_transaction() {
    let db = TestDb::new().await;
    let mut tx = db.app.tenant(TenantId::new()).await.unwrap();
    let job = InvitationEmail {
        tenant_id: TenantId::new(),
        invitation_id: InvitationId::new(),
        operation: uuid::Uuid::now_v7(),
    };
    let result = tenantkit_jobs::enqueue(&mut tx, &job).await;
    assert!(matches!(
        result,
        Err(tenantkit_jobs::JobError::WrongTenant { .. })
    ));
}

#[tokio::test]
async fn a_failed_sign_up_leaves_no_job_and_no_rows() {
    let app = TestApp::spawn().await;
    app.sign_up("Taken", "first@taken.test").await;
    // The same address, chosen explicitly: the tenant insert fails, so nothing of this attempt
    // may remain.
    let response = app
        .post_json(
            "/api/v1/signups",
            serde_json::json!({
                "organisation": "Taken", "slug": "taken", "name": "Second", "email": "second@taken.test",
                "password": "correct horse battery staple",
            }),
        )
        .await;
    assert_eq!(response.status(), 409);
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    let jobs: i64 = sqlx::query_scalar("select count(*) from apalis.jobs")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!((users, jobs), (1, 1));
}

#[tokio::test]
async fn the_worker_sends_the_verification_email_once_even_if_the_job_runs_twice() {
    let app = TestApp::spawn().await;
    let settings = settings_for(&app.db, &[]);
    let worker = RunningWorker::start(settings.clone());

    let recipient = format!("owner-{}@verify.test", uuid::Uuid::now_v7().simple());
    let signed_up = app.sign_up("Verify Labs", &recipient).await;
    let messages = mail::wait_for(&recipient, 1, Duration::from_secs(30)).await;
    assert_eq!(messages.len(), 1, "expected one verification email");
    assert!(messages[0].contains("Message-ID: <account.verify_email."));
    let operation: uuid::Uuid = sqlx::query_scalar(
        "select (convert_from(job, 'UTF8')::jsonb ->> 'operation')::uuid from apalis.jobs
         where job_type = 'email.account'",
    )
    .fetch_one(&app.db.owner)
    .await
    .unwrap();

    // At-least-once delivery may run the job again: the ledger makes it a no-op.
    let job = AccountEmail {
        user_id: signed_up["user_id"].as_str().unwrap().parse().unwrap(),
        operation,
        kind: AccountEmailKind::VerifyEmail,
    };
    deliver_account_email(
        job,
        Data::new(app.db.app.clone()),
        Data::new(Mailer::new(&settings.smtp).unwrap()),
        Data::new(EmailSettings {
            links: Links::new(&settings.server.public_url, &settings.secret_key),
            retry_base: Duration::from_secs(1),
        }),
        None,
        Attempt::new(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        mail::wait_for(&recipient, 2, Duration::from_secs(1))
            .await
            .len(),
        1
    );

    // The job is acknowledged just after the mail is handed over; stopping drains it.
    worker.stop_within(Duration::from_secs(30)).await;
    let status: String = sqlx::query_scalar("select status from apalis.jobs")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!(status, "Done");
}

/// Two runs of one email at once (an orphan's re-run beside the original, still going): the
/// second waits for the first's ledger row. When the first commits, the second sends nothing;
/// when the first fails and rolls back, the second sends the email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_email_at_once_send_it_once_even_when_the_first_fails() {
    use tenantkit_notifications::{
        Delivery, EmailContent, Ledger, OutgoingEmail, Welcome, send_once,
    };

    let db = TestDb::new().await;
    let mailer = Mailer::new(&settings_for(&db, &[]).smtp).unwrap();
    let closed = format!("smtp://127.0.0.1:{}", tenantkit_tests::process::free_port());
    let failing = Mailer::new(&settings_for(&db, &[("smtp.url", closed.as_str())]).smtp).unwrap();
    let email = |key: &'static str, to: &str| OutgoingEmail {
        key,
        to: to.parse().unwrap(),
        template: "welcome",
        content: Welcome {
            name: "Ada".into(),
            organisation: "Acme".into(),
            dashboard_link: "http://127.0.0.1/dashboard".into(),
        }
        .render()
        .unwrap(),
    };
    // Run `second` while `first`'s transaction is still open; it must wait for it.
    let second_waits_for = |first: tenantkit_db::GlobalTx, key: &'static str, to: String| {
        let (db, mailer) = (db.app.clone(), mailer.clone());
        async move {
            let second = tokio::spawn(async move {
                let mut tx = db.global().await.unwrap();
                let delivery = send_once(Ledger::Account(&mut tx, None), &mailer, email(key, &to))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                delivery
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(!second.is_finished(), "the second run did not wait");
            (first, second)
        }
    };

    let committed = format!("first-{}@ledger.test", uuid::Uuid::now_v7().simple());
    let key: &'static str = Box::leak(format!("test:{committed}").into_boxed_str());
    let mut first = db.app.global().await.unwrap();
    let delivery = send_once(
        Ledger::Account(&mut first, None),
        &mailer,
        email(key, &committed),
    )
    .await
    .unwrap();
    assert_eq!(delivery, Delivery::Sent);
    let (first, second) = second_waits_for(first, key, committed.clone()).await;
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), Delivery::AlreadySent);

    let failed = format!("failed-{}@ledger.test", uuid::Uuid::now_v7().simple());
    let key: &'static str = Box::leak(format!("test:{failed}").into_boxed_str());
    let mut first = db.app.global().await.unwrap();
    send_once(
        Ledger::Account(&mut first, None),
        &failing,
        email(key, &failed),
    )
    .await
    .expect_err("no SMTP server listens there");
    let (first, second) = second_waits_for(first, key, failed.clone()).await;
    drop(first);
    assert_eq!(second.await.unwrap(), Delivery::Sent);

    for recipient in [&committed, &failed] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            mail::wait_for(recipient, 2, Duration::from_secs(2))
                .await
                .len(),
            1,
            "{recipient}"
        );
    }
}
