//! The HTTP face of Tenantkit: routes, middleware and the one place where domain outcomes
//! become HTTP statuses (`problem.rs`). Only this crate and the apps know poem.

mod admin;
mod allow;
mod api;
mod app;
mod browser;
mod client_ip;
mod csrf;
mod health;
mod kv;
mod middleware;
mod pages;
mod problem;
mod rate_limit;
mod session;
mod shared_files;
mod state;
mod usage;
mod webhooks;

pub use app::Application;
pub use problem::{ApiError, Problem};
pub use state::AppState;
