-- W5's baseline: the worker's claim and acknowledgement, as apalis runs them (captured with
-- pg_stat_statements): apalis.get_jobs claims a batch (the worker's
-- worker.fetch_batch) in one transaction, and one
-- statement acknowledges the batch (libs/jobs/src/sql/acknowledge.sql: apalis-postgres's
-- queries/task/handle_result.sql finding the jobs by id alone).
-- Variables: queue, batch. Each client is a registered worker "pgbench-<client_id>".
BEGIN;
select coalesce(jsonb_agg(jsonb_build_object('task_id', id, 'attempt', 1, 'result', jsonb_build_object('Ok', null), 'status', 'Done')), '[]')::text as payload from apalis.get_jobs('pgbench-' || :client_id, :queue, :batch) \gset
COMMIT;
BEGIN;
WITH j AS (SELECT (value ->> 'task_id')::text AS task_id, (value ->> 'attempt')::integer AS attempt, value -> 'result' AS result, value ->> 'status' AS status FROM jsonb_array_elements(:payload::jsonb) AS value), locked AS (SELECT jobs.id FROM apalis.jobs AS jobs WHERE jobs.id = ANY(ARRAY(SELECT task_id FROM j)) AND jobs.lock_by IS NOT DISTINCT FROM 'pgbench-' || :client_id ORDER BY jobs.id FOR UPDATE) UPDATE apalis.jobs AS jobs SET status = j.status, attempts = j.attempt, last_result = j.result, done_at = NOW() FROM j INNER JOIN locked ON locked.id = j.task_id WHERE jobs.id = locked.id;
COMMIT;
