-- W3's baseline: the statements POST /api/v1/tenants/{id}/invitations runs (captured with
-- pg_stat_statements), a tenant picked at random like the load's rotation, in one transaction
-- (BEGIN and the tenant setting pipelined, as the server sends them in one round trip): the API
-- key's check with its organisation's status (no UPDATE: its last use is recent), then what reads the tenant and its entitlements (twice: to refuse a
-- read-only organisation, then for the seat limit), the members, locks and counts seats, looks
-- for a pending invitation, inserts the invitation, its email job (apalis's own insert) and
-- the audit event, and reads the pending invitations back. The one extra statement here picks
-- the tenant (bench_keys). Variables: tenants (how many to pick from).
\set t random(1, :tenants)
\set n random(1, 2000000000)
select tenant_id as tenant, key_id as key from bench_keys where n = :t \gset
\startpipeline
BEGIN;
select set_config('app.tenant_id', :tenant, true);
\endpipeline
select k.role, k.secret_hash, coalesce(k.last_used_at >= now() - interval '1 minute', false) as recently_used, t.status as tenant_status from api_keys k left join tenants t on t.id = k.tenant_id and t.id = :tenant where k.tenant_id = :tenant and k.id = :key and k.revoked_at is null;
select name, status, plan, entitlement_overrides from tenants where id = :tenant;
select stripe_customer_id, customer_email, dunning_invoice_id, payment_failed_at, grace_ends_at, restricted_at from billing_accounts where tenant_id = :tenant;
select id, status, plan, price_id, billing_interval, quantity, item_id, current_period_end, trial_end, cancel_at_period_end, canceled_at, stripe_created_at from billing_subscriptions where tenant_id = :tenant order by stripe_created_at, id;
select name, status, plan, entitlement_overrides from tenants where id = :tenant;
select stripe_customer_id, customer_email, dunning_invoice_id, payment_failed_at, grace_ends_at, restricted_at from billing_accounts where tenant_id = :tenant;
select id, status, plan, price_id, billing_interval, quantity, item_id, current_period_end, trial_end, cancel_at_period_end, canceled_at, stripe_created_at from billing_subscriptions where tenant_id = :tenant order by stripe_created_at, id;
select m.user_id, u.email, u.display_name, m.role, m.created_at as joined_at from memberships m join users u on u.id = m.user_id where m.tenant_id = :tenant order by case m.role when 'owner' then 0 when 'admin' then 1 else 2 end, m.created_at;
select id from tenants where id = :tenant for no key update;
select (select count(*) from memberships where tenant_id = :tenant) + (select count(*) from invitations where tenant_id = :tenant and status = 'pending' and expires_at > now()) as taken;
select tenant_id, id, email, role, invited_by, status, expires_at, created_at from invitations where tenant_id = :tenant and status = 'pending' and lower(email) = lower('pgb-' || :n || '@bench.test');
insert into invitations (tenant_id, id, email, role, invited_by, expires_at) values (:tenant, gen_random_uuid(), 'pgb-' || :n || '@bench.test', 'member', null, now() + interval '7 days') on conflict (tenant_id, lower(email)) where status = 'pending' do nothing;
INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) SELECT unnest(array[md5(random()::text)]) AS id, 'bench.pgbench'::text AS job_type, unnest(array[convert_to('{"tenant_id":"' || :tenant || '","invitation_id":"-","operation":"-"}', 'UTF8')]) AS job, 'Pending' AS status, 0 AS attempts, unnest(array[10]) AS max_attempts, to_timestamp(unnest(array[floor(extract(epoch from now()))::bigint])) AS run_at, unnest(array[0]) AS priority, unnest(array[null::hstore]) AS metadata, unnest(array['pgbench:' || md5(random()::text)]) AS idempotency_key;
insert into tenant_audit_events (tenant_id, id, actor_user_id, action, detail) values (:tenant, gen_random_uuid(), null, 'invitation.sent', '{"bench": true}');
select tenant_id, id, email, role, invited_by, status, expires_at, created_at from invitations where tenant_id = :tenant and status = 'pending' order by created_at desc;
COMMIT;
