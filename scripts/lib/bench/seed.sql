-- scripts/bench's data, run by the owner (row level security does not apply to it) with
--   psql -v tenants=100 -v rows=10000 -v users=1000 -v bench_tenant=<uuid of the signed-up one>
-- Tenants: the signed-up "Bench" organisation and tenants-1 more. Users: `users` people, each a
-- member of a tenth of the tenants (so a tenant has users/10 members, one of them its owner).
-- Per tenant: `rows` files (the first 100 of the bench tenant's small ones in /small), `rows`
-- invitations (1% pending), `rows` audit events, 10 API keys (secrets from bench_key_secret).
\set ON_ERROR_STOP on

insert into tenants (id, slug, name, plan, created_at)
select bench_uuid7(now() - make_interval(days => n)), 'seed-' || n, 'Seed Org ' || n,
       (array['free', 'team', 'business'])[1 + n % 3], now() - make_interval(days => n)
from generate_series(2, :tenants) n;

create table bench_tenants as
select row_number() over (order by (id <> :'bench_tenant'), slug)::int as n, id
from tenants where id = :'bench_tenant' or slug like 'seed-%';
alter table bench_tenants add primary key (n);

-- Nothing the benchmark does may be refused by a plan: the API allowance (per minute), seats
-- and the storage quota are lifted before the first API call (the server remembers an
-- allowance for 30 s).
update tenants set entitlement_overrides = jsonb_build_object(
        'api_requests_per_minute', 1000000000, 'seats', 1000000000,
        'storage_bytes', 1000000000000000)
where id in (select id from bench_tenants);

insert into users (id, email, display_name, email_verified_at, created_at)
select bench_uuid7(now() - make_interval(hours => n)), 'user' || n || '@seed.test', 'Seed User ' || n,
       now(), now() - make_interval(hours => n)
from generate_series(1, :users) n;
create table bench_users as
select row_number() over (order by email)::int as n, id from users where email like '%@seed.test';
alter table bench_users add primary key (n);

-- User u belongs to tenant t when (u + t) % 10 = 0; the smallest such user owns a seed tenant.
insert into memberships (tenant_id, user_id, role, created_at)
select t.id, u.id,
       case when u.n = min(u.n) over (partition by t.n) and t.id <> :'bench_tenant' then 'owner'
            when u.n % 7 = 0 then 'admin' else 'member' end,
       now() - make_interval(mins => u.n)
from bench_tenants t join bench_users u on (u.n + t.n) % 10 = 0;

insert into files (tenant_id, id, name, folder, size, content_type, sha256, uploader_user_id,
                   created_at, updated_at)
select t.id, bench_uuid7(now() - make_interval(secs => :rows - i)),
       'file-' || lpad(i::text, 6, '0') || (array['.txt', '.png', '.pdf', '.csv'])[1 + i % 4],
       case when i <= 100 then '/small'
            else (array['/', '/docs', '/images', '/reports/2025'])[1 + i % 4] end,
       case when i <= 100 then 100 + i else (i * 7919) % 5000000 end,
       (array['text/plain', 'image/png', 'application/pdf', 'text/csv'])[1 + i % 4],
       encode(sha256((t.id::text || i)::bytea), 'hex'),
       u.id, now() - make_interval(secs => :rows - i), now() - make_interval(secs => :rows - i)
from bench_tenants t cross join generate_series(1, :rows) i join bench_users u on u.n = 1 + i % :users;
insert into storage_usage (tenant_id, used_bytes)
select tenant_id, sum(size) from files group by tenant_id
on conflict (tenant_id) do update set used_bytes = excluded.used_bytes;

insert into invitations (tenant_id, id, email, role, invited_by, status, expires_at, created_at)
select t.id, bench_uuid7(now() - make_interval(mins => i)), 'invitee' || i || '@seed.test',
       case when i % 5 = 0 then 'admin' else 'member' end,
       u.id,
       case when i % 100 = 0 then 'pending' when i % 3 = 0 then 'revoked' else 'accepted' end,
       case when i % 100 = 0 then now() + interval '7 days' else now() - make_interval(mins => i) end,
       now() - make_interval(mins => i)
from bench_tenants t cross join generate_series(1, :rows) i join bench_users u on u.n = 1 + i % :users;

insert into tenant_audit_events (tenant_id, id, actor_user_id, action, detail, occurred_at)
select t.id, bench_uuid7(now() - make_interval(mins => i)), u.id,
       (array['invitation.sent', 'member.role_changed', 'api_key.created', 'file.uploaded'])[1 + i % 4],
       jsonb_build_object('n', i), now() - make_interval(mins => i)
from bench_tenants t cross join generate_series(1, :rows) i join bench_users u on u.n = 1 + i % :users;

-- Ten keys per tenant; key 1 of each is what the benchmark presents (owner role).
create table bench_keys as
select t.n, t.id as tenant_id, bench_uuid7(now() - make_interval(days => k)) as key_id, k
from bench_tenants t, generate_series(1, 10) k;
insert into api_keys (tenant_id, id, name, role, secret_hash, created_at)
select tenant_id, key_id, 'seed key ' || k, case when k = 1 then 'owner' else 'member' end,
       sha256(convert_to(bench_key_secret(tenant_id, k), 'UTF8')), now() - make_interval(days => k)
from bench_keys;
delete from bench_keys where k <> 1;
alter table bench_keys add primary key (n);
-- pgbench (as the application's role) picks tenants from here.
grant select on bench_tenants, bench_keys to tenantkit_app;

-- Vacuumed now, so that autovacuum does not wake up for these rows during the measurements.
vacuum analyze;
