//! The HTTP face of Tenantkit: routes, middleware and the one place where domain outcomes
//! become HTTP statuses (`problem.rs`). Only this crate and the apps know poem.

mod allow;
mod api;
mod app;
mod health;
mod middleware;
mod problem;
mod state;

pub use app::Application;
pub use problem::{ApiError, Problem};
pub use state::AppState;
