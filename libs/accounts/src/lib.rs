//! Accounts: people (users), their validated fields, passwords (argon2id), signed links,
//! two-factor authentication, and the flows that change an account (sign-in, verification,
//! reset, password and email changes) with the emails they send.
//! Users are global: one login can belong to several tenants (memberships live in tenancy).

pub mod audit;
pub mod email_flows;
pub mod emails;
mod error;
pub mod links;
mod model;
mod password;
pub mod password_flows;
pub mod repo;
pub mod sign_in;
pub mod tokens;
pub mod two_factor;

pub use error::AccountError;
pub use model::{Credentials, DisplayName, Email, NewUser, User};
pub use password::{PasswordHasher, PlainPassword};
