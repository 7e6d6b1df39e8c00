//! The admin dashboard's figures: tenants by status and plan, sign-ups per day, the queue.

use chrono::NaiveDate;
use tenantkit_db::PlatformTx;
use tenantkit_jobs::dead_letters::{self, QueueDepth};

use crate::PlatformError;

pub struct Dashboard {
    /// (status, plan, tenants)
    pub tenants: Vec<(String, String, i64)>,
    /// The last 30 days, oldest first, days without sign-ups included.
    pub signups: Vec<(NaiveDate, i64)>,
    pub queues: Vec<QueueDepth>,
    /// Email jobs that failed at least once in the last 7 days, and how many gave up.
    pub email_failures: (i64, i64),
}

pub async fn load(tx: &mut PlatformTx) -> Result<Dashboard, PlatformError> {
    let tenants = sqlx::query!(
        r#"-- cross-tenant: platform-wide figures for a platform admin (platform_read)
           select status, plan, count(*) as "tenants!" from tenants
           group by status, plan order by status, plan"#
    )
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|r| (r.status, r.plan, r.tenants))
    .collect();
    let signups = sqlx::query!(
        r#"-- cross-tenant: platform-wide sign-ups for a platform admin (platform_read)
           -- One range scan of tenants_created_idx, then a day per row (a join per day
           -- read every tenant 30 times: 600 ms at 100,000 tenants).
           with recent as (
               select t.created_at::date as signup_day, count(*) as signups from tenants t
               where t.created_at >= (current_date - 29)::timestamptz
               group by 1)
           select day::date as "day!", coalesce(recent.signups, 0) as "signups!"
           from generate_series(current_date - 29, current_date, interval '1 day') day
           left join recent on recent.signup_day = day::date
           order by day"#
    )
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|r| (r.day, r.signups))
    .collect();
    let queues = dead_letters::depth_by_queue(tx.conn()).await?;
    let email_failures = dead_letters::email_failures(tx.conn(), 7).await?;
    Ok(Dashboard {
        tenants,
        signups,
        queues,
        email_failures,
    })
}

/// Sign-ups per day as an SVG bar chart (rendered here, so the page needs no script).
pub fn signup_chart(signups: &[(NaiveDate, i64)]) -> String {
    const WIDTH: usize = 600;
    const HEIGHT: usize = 160;
    let max = signups.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let bar = WIDTH / signups.len().max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" \
         aria-label=\"Sign-ups per day, last {} days\" class=\"chart\">",
        HEIGHT + 20,
        signups.len()
    );
    for (i, (day, count)) in signups.iter().enumerate() {
        let height = (*count as usize * HEIGHT) / max as usize;
        let x = i * bar;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{height}\"><title>{day}: {count}</title></rect>",
            HEIGHT - height,
            bar.saturating_sub(2).max(1)
        ));
    }
    if let (Some((first, _)), Some((last, _))) = (signups.first(), signups.last()) {
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\">{first}</text><text x=\"{WIDTH}\" y=\"{}\" text-anchor=\"end\">{last}</text>",
            HEIGHT + 16,
            HEIGHT + 16
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{WIDTH}\" y=\"12\" text-anchor=\"end\">max {max}/day</text></svg>"
    ));
    svg
}
