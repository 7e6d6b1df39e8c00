//! Kernel: the small vocabulary every other crate shares — typed ids, roles, the clock.
//! It knows nothing of HTTP, SQL queries or configuration.

pub mod clock;
pub mod ids;
pub mod role;

pub use clock::{Clock, SystemClock};
pub use ids::{ApiKeyId, AuditEventId, InvitationId, TenantId, UserId};
pub use role::{Role, UnknownRole};
