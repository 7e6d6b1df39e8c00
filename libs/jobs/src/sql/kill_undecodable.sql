-- Claimed jobs ($1, ids) whose payload cannot be decoded ($2, why): no attempt can ever run
-- them, so they are killed at once, as dead letters an admin sees, with the reason.
update apalis.jobs
set status = 'Killed',
    attempts = jobs.attempts + 1,
    done_at = now(),
    last_result = jsonb_build_object('Err', 'cannot decode the job: ' || undecodable.reason)
from unnest($1::text[], $2::text[]) as undecodable (id, reason)
where jobs.id = undecodable.id
