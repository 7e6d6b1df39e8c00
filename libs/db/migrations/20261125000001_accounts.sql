-- Accounts: email verification, two-factor, single-use tokens, invitations, API keys, and each
-- user's own view of their memberships across tenants.

-- Two-factor (TOTP) state. The last accepted time step refuses a replayed code.
alter table users
    add column totp_secret text,
    add column totp_enabled_at timestamptz,
    add column totp_last_step bigint;

-- The user on whose behalf a transaction reads "my tenants" (db::UserTx), or NULL.
create function tenantkit_current_user() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('app.user_id', true), '')::uuid $$;

-- A signed-in user may read their own memberships and the tenants they belong to, in every
-- tenant, and nothing else: the tenant switcher and "tenants of the user" need exactly this.
create policy member_self_read on memberships for select
    using (user_id = tenantkit_current_user());
create policy member_self_read on tenants for select
    using (id in (select m.tenant_id from memberships m where m.user_id = tenantkit_current_user()));

-- Signed tokens (verification, reset, email change) are stateless; their nonce lands here when
-- used, which makes each single use. Rows past their token's expiry can be purged.
create table used_tokens (
    nonce text primary key,
    used_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index used_tokens_expiry_idx on used_tokens (expires_at);
grant select, insert, delete on used_tokens to tenantkit_app;

-- Two-factor recovery codes, stored as SHA-256 of the normalised code; each works once.
create table recovery_codes (
    user_id uuid not null references users (id) on delete cascade,
    code_hash text not null,
    used_at timestamptz,
    primary key (user_id, code_hash)
);
grant select, insert, update, delete on recovery_codes to tenantkit_app;

create table invitations (
    tenant_id uuid not null references tenants (id) on delete cascade,
    id uuid not null,
    email text not null check (length(email) between 3 and 254),
    role text not null check (role in ('owner', 'admin', 'member')),
    invited_by uuid references users (id) on delete set null,
    status text not null default 'pending' check (status in ('pending', 'accepted', 'revoked')),
    expires_at timestamptz not null,
    accepted_by uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id)
);
-- One pending invitation per address and tenant: inviting again resends it.
create unique index invitations_pending_email_key on invitations (tenant_id, lower(email))
    where status = 'pending';
create trigger invitations_touch before update on invitations
    for each row execute function tenantkit_touch_updated_at();
select tenantkit_isolate_by_tenant('invitations');
grant select, insert, update on invitations to tenantkit_app;

-- API keys: the secret is shown once; only its SHA-256 is kept (it is 256 random bits, so a
-- slow hash adds nothing). The tenant id is part of the presented key, so lookup happens inside
-- that tenant's row level security like every other tenant read.
create table api_keys (
    tenant_id uuid not null references tenants (id) on delete cascade,
    id uuid not null,
    name text not null check (length(name) between 1 and 100),
    role text not null check (role in ('owner', 'admin', 'member')),
    secret_hash bytea not null,
    created_by uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    primary key (tenant_id, id)
);
select tenantkit_isolate_by_tenant('api_keys');
grant select, insert, update on api_keys to tenantkit_app;

-- Emails about the account itself (verification, reset, password changed) belong to no
-- tenant; they have their own delivery ledger, keyed like `sent_emails`.
create table account_emails_sent (
    idempotency_key text primary key,
    user_id uuid references users (id) on delete set null,
    message_id text not null,
    recipient text not null,
    template text not null,
    sent_at timestamptz not null default now()
);
grant select, insert on account_emails_sent to tenantkit_app;
