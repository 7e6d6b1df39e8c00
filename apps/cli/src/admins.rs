//! `admins [list] [--json]`, `admins create …` and its older spelling `create-admin …`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use tenantkit_accounts::{
    AccountError, DisplayName, Email, NewUser, PasswordHasher, PlainPassword,
};
use tenantkit_db::Database;
use tenantkit_kernel::UserId;

use crate::fail;

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    email: String,
    #[arg(long, default_value = "Platform admin")]
    name: String,
    #[arg(long, env = "TENANTKIT_ADMIN_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Succeed without changes when the admin already exists.
    #[arg(long)]
    if_missing: bool,
}

/// `admins` alone lists, as it always did; `admins list` and `admins create` are the
/// explicit spellings.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AdminsArgs {
    #[command(subcommand)]
    command: Option<AdminsCommand>,
    /// Print JSON (bare `admins` lists).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum AdminsCommand {
    /// List platform admins (what bare `admins` does).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a platform admin (the same as `create-admin`). Without a password one is
    /// generated and printed once.
    Create(CreateArgs),
}

pub async fn run(db: &Database, args: AdminsArgs) -> ExitCode {
    match args.command {
        None => list(db, args.json).await,
        Some(AdminsCommand::List { json }) => list(db, json).await,
        Some(AdminsCommand::Create(create_args)) => create(db, create_args).await,
    }
}

pub async fn create(db: &Database, args: CreateArgs) -> ExitCode {
    let CreateArgs {
        email,
        name,
        password,
        if_missing,
    } = args;
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
            email: Email::parse(&email)?,
            display_name: DisplayName::parse(&name)?,
            password_hash: PasswordHasher::default()
                .hash(PlainPassword::parse(password.clone())?)
                .await?,
            is_platform_admin: true,
        };
        let mut tx = db.global().await?;
        tenantkit_accounts::repo::insert(tx.conn(), &user).await?;
        // The operator vouches for the address: an admin must be able to sign in at once.
        tenantkit_accounts::repo::mark_email_verified(tx.conn(), user.id).await?;
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

async fn list(db: &Database, json: bool) -> ExitCode {
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
