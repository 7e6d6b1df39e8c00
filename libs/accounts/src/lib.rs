//! Accounts: people (users), their validated fields, and password hashing.
//! Users are global: one login can belong to several tenants (memberships live in tenancy).

mod error;
mod model;
mod password;
pub mod repo;

pub use error::AccountError;
pub use model::{DisplayName, Email, NewUser, User};
pub use password::{PasswordHasher, PlainPassword};
