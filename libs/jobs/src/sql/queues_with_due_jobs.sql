-- Which of the given queues ($1) have a job to run now: the condition and order of
-- apalis.get_jobs, so each probe is one step into the partial index idx_apalis_jobs_fetch_partial.
select queue
from unnest($1::text[]) as queue
where exists (
    select 1
    from apalis.jobs
    where job_type = queue
      and (status = 'Pending' or (status = 'Failed' and attempts < max_attempts))
      and run_at < now()
)
