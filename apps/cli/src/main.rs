//! `tenantkit-admin`: operator commands — migrate, create-admin, list admins, check.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use tenantkit_accounts::{
    AccountError, DisplayName, Email, NewUser, PasswordHasher, PlainPassword,
};
use tenantkit_config::Settings;
use tenantkit_db::Database;
use tenantkit_kernel::UserId;

#[derive(Parser)]
#[command(
    name = "tenantkit-admin",
    version,
    about = "Tenantkit operator commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply database migrations, connecting as the schema owner.
    Migrate {
        /// The owner's connection URL; defaults to the configured `database.migration_url`.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Create a platform admin. Without a password one is generated and printed once.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Platform admin")]
        name: String,
        #[arg(long, env = "TENANTKIT_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Succeed without changes when the admin already exists.
        #[arg(long)]
        if_missing: bool,
    },
    /// List platform admins.
    Admins {
        #[arg(long)]
        json: bool,
    },
    /// Report configuration that is unfit for production; exits 1 when any problem is found.
    Check,
    /// Time one password hash (argon2id, the production parameters) on this machine, and the
    /// logins per second it allows: one hash per core at a time.
    HashTime {
        /// Hashes to time; the median is reported.
        #[arg(long, default_value_t = 9)]
        samples: usize,
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate {
            database_url: Some(url),
        } => migrate(&url).await,
        Command::Migrate { database_url: None } => match Settings::load_or_report() {
            Some(settings) => migrate(settings.database.migration_url.expose_secret()).await,
            None => ExitCode::from(2),
        },
        Command::Check => check(),
        Command::HashTime { samples, json } => hash_time(samples.max(1), json),
        command => match Settings::load_or_report() {
            Some(settings) => {
                let db = match Database::connect_lazy(&settings.database) {
                    Ok(db) => db,
                    Err(error) => return fail(&error.to_string()),
                };
                match command {
                    Command::CreateAdmin {
                        email,
                        name,
                        password,
                        if_missing,
                    } => create_admin(&db, &email, &name, password, if_missing).await,
                    Command::Admins { json } => list_admins(&db, json).await,
                    Command::Migrate { .. } | Command::Check | Command::HashTime { .. } => {
                        unreachable!("handled above")
                    }
                }
            }
            None => ExitCode::from(2),
        },
    }
}

fn hash_time(samples: usize, json: bool) -> ExitCode {
    let mut times: Vec<f64> = (0..samples)
        .map(|_| PasswordHasher::time_one_hash().as_secs_f64() * 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let median_ms = times[times.len() / 2];
    let cores = PasswordHasher::concurrency();
    let ceiling = cores as f64 * 1000.0 / median_ms;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "hash_ms": median_ms,
                "cores": cores,
                "ceiling_logins_per_sec": ceiling,
            })
        );
    } else {
        println!(
            "one hash: {median_ms:.1} ms (median of {samples}); {cores} at a time: \
             at most {ceiling:.0} logins/s"
        );
    }
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn migrate(url: &str) -> ExitCode {
    let pool = match tenantkit_db::PgPool::connect(url).await {
        Ok(pool) => pool,
        Err(error) => return fail(&format!("cannot connect to the database: {error}")),
    };
    match tenantkit_db::migrate::run(&pool).await {
        Ok(()) => {
            println!("migrations applied");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&format!("migration failed: {error}")),
    }
}

async fn create_admin(
    db: &Database,
    email: &str,
    name: &str,
    password: Option<String>,
    if_missing: bool,
) -> ExitCode {
    let (password, generated) = match password {
        Some(password) => (SecretString::from(password), false),
        None => (
            SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), 20)),
            true,
        ),
    };
    let result = async {
        let user = NewUser {
            id: UserId::new(),
            email: Email::parse(email)?,
            display_name: DisplayName::parse(name)?,
            password_hash: PasswordHasher::default()
                .hash(PlainPassword::parse(password.clone())?)
                .await?,
            is_platform_admin: true,
        };
        let mut tx = db.global().await?;
        tenantkit_accounts::repo::insert(tx.conn(), &user).await?;
        tx.commit().await?;
        Ok::<_, AccountError>(user)
    }
    .await;
    match result {
        Ok(user) => {
            println!(
                "created platform admin {} ({})",
                user.email.as_str(),
                user.id
            );
            if generated {
                println!("password (shown once): {}", password.expose_secret());
            }
            ExitCode::SUCCESS
        }
        Err(AccountError::EmailTaken) if if_missing => {
            println!("platform admin {email} already exists");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error.to_string()),
    }
}

async fn list_admins(db: &Database, json: bool) -> ExitCode {
    let admins = async {
        let mut tx = db.global().await?;
        tenantkit_accounts::repo::list_platform_admins(tx.conn()).await
    }
    .await;
    match admins {
        Ok(admins) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&admins).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(admins) => {
            for admin in admins {
                println!("{}\t{}\t{}", admin.id, admin.email, admin.display_name);
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error.to_string()),
    }
}

fn check() -> ExitCode {
    let Some(settings) = Settings::load_or_report() else {
        return ExitCode::from(2);
    };
    let problems = settings.deploy_problems();
    if problems.is_empty() {
        println!("no problems found");
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        println!("problem: {problem}");
    }
    println!("{} problem(s) found", problems.len());
    ExitCode::FAILURE
}
