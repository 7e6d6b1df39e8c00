-- Platform admin: plans and suspension on tenants, locked users, the account audit trail,
-- and the indexes that keep the admin's tenant search fast at 100,000 tenants.

create extension if not exists pg_trgm;

-- A tenant's plan (a name from configuration; billing sets it later), admin overrides of its
-- entitlements, why it is suspended, and when a soft-deleted tenant's data is purged.
alter table tenants
    add column plan text not null default 'free' check (plan ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    add column entitlement_overrides jsonb not null default '{}'
        check (jsonb_typeof(entitlement_overrides) = 'object'),
    add column status_reason text check (length(status_reason) <= 500),
    add column deleted_at timestamptz,
    add column purge_after timestamptz;
alter table tenants drop constraint tenants_status_check;
-- 'purged': the data is gone; the row stays so the audit trail keeps its tenant.
alter table tenants add constraint tenants_status_check
    check (status in ('active', 'suspended', 'deleted', 'purged'));
-- The admin's tenant list: newest first, keyset on (created_at, id), optionally by status/plan.
create index tenants_created_idx on tenants (created_at desc, id desc);
create index tenants_status_created_idx on tenants (status, created_at desc, id desc);
create index tenants_plan_created_idx on tenants (plan, created_at desc, id desc);
create index tenants_name_idx on tenants (lower(name), id);
-- Substring search on names and slugs.
create index tenants_name_trgm_idx on tenants using gin (lower(name) gin_trgm_ops);
create index tenants_slug_trgm_idx on tenants using gin (slug gin_trgm_ops);
create index tenants_purge_idx on tenants (purge_after) where status = 'deleted';
-- Prefix search on emails (owner / member email).
create index users_email_prefix_idx on users (lower(email) text_pattern_ops);

-- Purging a soft-deleted tenant removes its data but keeps the tenant row and its audit trail.
grant delete on invitations, api_keys, sent_emails to tenantkit_app;

-- A locked user cannot sign in; their sessions are ended when they are locked.
alter table users add column locked_at timestamptz;

-- Admin actions on a tenant land in its own audit trail (its owners see them), with the reason.
alter table tenant_audit_events add column reason text check (length(reason) <= 500);
create index tenant_audit_events_time_idx on tenant_audit_events (tenant_id, occurred_at desc, id desc);

-- Security events about a person rather than a tenant: sign-up, logins (failed ones too),
-- two-factor, password and email changes, and admin actions on the user. Append-only like the
-- other trails: the application role may insert and read, never update or delete.
create table account_audit_events (
    id uuid primary key,
    user_id uuid references users (id) on delete set null,
    actor_user_id uuid references users (id) on delete set null,
    action text not null,
    reason text check (length(reason) <= 500),
    detail jsonb not null default '{}',
    ip text,
    occurred_at timestamptz not null default now()
);
create index account_audit_events_time_idx on account_audit_events (occurred_at desc, id desc);
create index account_audit_events_user_idx on account_audit_events (user_id, occurred_at desc);
grant select, insert on account_audit_events to tenantkit_app;

-- Platform events may concern one tenant (a tenant read, a job of it retried). Not named
-- tenant_id: the table is the platform's, not tenant-owned.
alter table platform_audit_events
    add column subject_tenant_id uuid references tenants (id) on delete set null;
create index platform_audit_events_time_idx on platform_audit_events (occurred_at desc, id desc);

-- Belt and braces for append-only: even a role that was granted more cannot rewrite history.
-- The one update allowed is the database's own: a deleted user's or tenant's id set to NULL by
-- an `on delete set null` reference, leaving every other column as it was.
create function tenantkit_refuse_audit_change() returns trigger
    language plpgsql
    as $$
declare
    references_only constant text[] :=
        array['user_id', 'actor_user_id', 'tenant_id', 'subject_tenant_id'];
    before_row jsonb;
    after_row jsonb;
    key text;
begin
    if tg_op = 'UPDATE' then
        before_row := to_jsonb(old) - references_only;
        after_row := to_jsonb(new) - references_only;
        if before_row = after_row then
            foreach key in array references_only loop
                if (to_jsonb(new) -> key) is distinct from (to_jsonb(old) -> key)
                   and (to_jsonb(new) -> key) <> 'null'::jsonb then
                    raise exception 'audit events are append-only' using errcode = '42501';
                end if;
            end loop;
            return new;
        end if;
    end if;
    raise exception 'audit events are append-only' using errcode = '42501';
end
$$;
create trigger tenant_audit_events_append_only before update or delete on tenant_audit_events
    for each row execute function tenantkit_refuse_audit_change();
create trigger account_audit_events_append_only before update or delete on account_audit_events
    for each row execute function tenantkit_refuse_audit_change();
create trigger platform_audit_events_append_only before update or delete on platform_audit_events
    for each row execute function tenantkit_refuse_audit_change();
create trigger tenant_audit_events_no_truncate before truncate on tenant_audit_events
    for each statement execute function tenantkit_refuse_audit_change();
create trigger account_audit_events_no_truncate before truncate on account_audit_events
    for each statement execute function tenantkit_refuse_audit_change();
create trigger platform_audit_events_no_truncate before truncate on platform_audit_events
    for each statement execute function tenantkit_refuse_audit_change();
