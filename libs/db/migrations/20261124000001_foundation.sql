-- Foundation schema: tenants, users, memberships and the audit trail.
--
-- Isolation rules every tenant-owned table follows (the catalog test enforces them):
--   * tenant_id leads the primary key and every foreign key (ready for Citus distribution);
--   * row level security is ENABLEd and FORCEd;
--   * policies compare with tenantkit_current_tenant(), which is NULL — matching nothing —
--     when app.tenant_id is unset or empty, so a forgotten tenant context fails closed.
-- The application connects as tenantkit_app (or a login role that is a member of it):
-- it owns nothing and has no BYPASSRLS. Migrations run as the owner.

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'tenantkit_app') then
        create role tenantkit_app nologin nosuperuser nobypassrls nocreatedb nocreaterole;
    end if;
end
$$;

grant usage on schema public to tenantkit_app;

-- The tenant of the current transaction, or NULL (fail closed).
create function tenantkit_current_tenant() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.tenant_id', true), '')::uuid $$;

-- True only inside the explicit, audited platform-admin path (db::PlatformTx); grants read only.
create function tenantkit_platform_access() returns boolean
    language sql stable parallel safe
    as $$ select coalesce(current_setting('app.platform_access', true), '') = 'on' $$;

-- The one call that makes a table tenant-owned: row level security enabled and forced, the
-- isolation policy (reads and writes), and the platform-admin read policy. Every tenant table
-- goes through it, so none can be half protected.
create function tenantkit_isolate_by_tenant(target regclass, tenant_column name default 'tenant_id')
    returns void
    language plpgsql
    as $$
begin
    execute format('alter table %s enable row level security', target);
    execute format('alter table %s force row level security', target);
    execute format(
        'create policy tenant_isolation on %s using (%I = tenantkit_current_tenant()) '
        'with check (%I = tenantkit_current_tenant())',
        target, tenant_column, tenant_column);
    execute format(
        'create policy platform_read on %s for select using (tenantkit_platform_access())', target);
end
$$;
revoke execute on function tenantkit_isolate_by_tenant(regclass, name) from public;

create function tenantkit_touch_updated_at() returns trigger
    language plpgsql
    as $$ begin new.updated_at := now(); return new; end $$;

create table tenants (
    id uuid primary key,
    slug text not null,
    name text not null check (length(name) between 1 and 200),
    status text not null default 'active' check (status in ('active', 'suspended', 'deleted')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tenants_slug_key unique (slug),
    constraint tenants_slug_format check (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$')
);
create trigger tenants_touch before update on tenants
    for each row execute function tenantkit_touch_updated_at();
select tenantkit_isolate_by_tenant('tenants', 'id');
grant select, insert, update on tenants to tenantkit_app;

-- A person. Users are global (one login, several tenants), so this table is not tenant-owned.
create table users (
    id uuid primary key,
    email text not null check (length(email) between 3 and 254 and position('@' in email) > 1),
    display_name text not null check (length(display_name) between 1 and 200),
    password_hash text,
    is_platform_admin boolean not null default false,
    email_verified_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index users_email_key on users (lower(email));
create trigger users_touch before update on users
    for each row execute function tenantkit_touch_updated_at();
grant select, insert, update, delete on users to tenantkit_app;

create table memberships (
    tenant_id uuid not null references tenants (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    role text not null check (role in ('owner', 'admin', 'member')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, user_id)
);
create index memberships_user_idx on memberships (user_id);
create trigger memberships_touch before update on memberships
    for each row execute function tenantkit_touch_updated_at();
select tenantkit_isolate_by_tenant('memberships');
grant select, insert, update, delete on memberships to tenantkit_app;

-- Append-only: the application may insert and read, never update or delete.
create table tenant_audit_events (
    tenant_id uuid not null references tenants (id) on delete cascade,
    id uuid not null,
    actor_user_id uuid references users (id) on delete set null,
    action text not null,
    detail jsonb not null default '{}',
    occurred_at timestamptz not null default now(),
    primary key (tenant_id, id)
);
select tenantkit_isolate_by_tenant('tenant_audit_events');
grant select, insert on tenant_audit_events to tenantkit_app;

-- Platform-level events: every cross-tenant read by a platform admin lands here with its reason.
create table platform_audit_events (
    id uuid primary key,
    actor_user_id uuid references users (id) on delete set null,
    action text not null,
    reason text not null check (length(reason) between 1 and 500),
    detail jsonb not null default '{}',
    occurred_at timestamptz not null default now()
);
grant select, insert on platform_audit_events to tenantkit_app;

-- One row per email actually handed to SMTP, keyed by a deterministic idempotency key, so a
-- job that runs twice (at-least-once delivery) does not send twice.
create table sent_emails (
    tenant_id uuid not null references tenants (id) on delete cascade,
    idempotency_key text not null,
    message_id text not null,
    recipient text not null,
    template text not null,
    sent_at timestamptz not null default now(),
    primary key (tenant_id, idempotency_key)
);
select tenantkit_isolate_by_tenant('sent_emails');
grant select, insert on sent_emails to tenantkit_app;

