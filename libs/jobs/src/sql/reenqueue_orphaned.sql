-- Jobs held by consumers of the given queues ($1) silent for $2 seconds go back to pending,
-- with the attempt counted (apalis-postgres's queries/backend/reenqueue_orphaned.sql, for all
-- of a process's queues at once).
with stale as (
    select jobs.id
    from apalis.jobs
    join apalis.workers on jobs.lock_by = workers.id
    where jobs.status in ('Running', 'Queued')
      and workers.worker_type = any($1::text[])
      and workers.last_seen <= now() - make_interval(secs => $2)
    for update of jobs skip locked
)
update apalis.jobs
set status = 'Pending',
    done_at = null,
    lock_by = null,
    lock_at = null,
    attempts = attempts + 1,
    last_result = '{"Err": "Re-enqueued due to worker heartbeat timeout."}'
from stale
where apalis.jobs.id = stale.id
