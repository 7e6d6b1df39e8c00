//! The queue statements Tenantkit runs itself, beside apalis-postgres's own.

pub(crate) const QUEUES_WITH_DUE_JOBS: &str = include_str!("sql/queues_with_due_jobs.sql");
pub(crate) const KEEP_ALIVE: &str = include_str!("sql/keep_alive.sql");
pub(crate) const REENQUEUE_ORPHANED: &str = include_str!("sql/reenqueue_orphaned.sql");
pub(crate) const REGISTER_CONSUMER: &str = include_str!("sql/register_consumer.sql");
pub(crate) const KILL_UNDECODABLE: &str = include_str!("sql/kill_undecodable.sql");
pub(crate) const ACKNOWLEDGE: &str = include_str!("sql/acknowledge.sql");
