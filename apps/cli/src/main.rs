//! `tenantkit-admin`: operator commands — migrate, platform admins, tenants, check.

mod admins;
mod table;
mod tenants;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tenantkit_accounts::PasswordHasher;
use tenantkit_config::Settings;
use tenantkit_db::Database;

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
    /// Create a platform admin (also `admins create`). Without a password one is generated and
    /// printed once.
    CreateAdmin(admins::CreateArgs),
    /// Platform admins: `admins [--json]` or `admins list [--json]` lists them, `admins create`
    /// adds one.
    Admins(admins::AdminsArgs),
    /// Find tenants, look at one, suspend or reactivate it, acting as a platform admin
    /// (`--as EMAIL`). Exits 1 when the tenant is not found or the action does not apply,
    /// 2 on usage errors.
    Tenants(tenants::TenantsArgs),
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
                    Command::CreateAdmin(args) => admins::create(&db, args).await,
                    Command::Admins(args) => admins::run(&db, args).await,
                    Command::Tenants(args) => tenants::run(&db, args).await,
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

/// Exit 1: something failed or was not found, or the action does not apply.
fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Exit 2: the command line or the configuration is wrong.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
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
