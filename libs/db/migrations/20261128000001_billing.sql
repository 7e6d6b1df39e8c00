-- Billing with Stripe: each tenant's Stripe customer and dunning state, its subscriptions and
-- invoices as Stripe last reported them, the webhook events received, and the lookup from a
-- Stripe customer to its tenant.
--
-- Stripe stays the source of truth for money. These tables hold the state last fetched from
-- Stripe (events only say "look again": the worker refetches the object), so a late or
-- repeated event can never move a tenant backwards. `tenants.plan` is what entitlements read;
-- billing sets it when the tenant's subscription changes.

-- One row per tenant that has (or had) anything to do with Stripe. Its row lock serialises
-- all billing work of the tenant (webhook jobs, seat syncs, grace-period checks), so two jobs
-- can never interleave "fetch from Stripe" and "store" for the same tenant.
create table billing_accounts (
    tenant_id uuid not null references tenants (id) on delete cascade,
    stripe_customer_id text,
    customer_email text,
    customer_name text,
    -- Dunning: the unpaid invoice that started it, when, and when access becomes read-only.
    dunning_invoice_id text,
    payment_failed_at timestamptz,
    grace_ends_at timestamptz,
    restricted_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id),
    -- A customer belongs to one tenant; checked again by the global lookup below.
    constraint billing_accounts_customer_key unique (stripe_customer_id),
    constraint billing_accounts_dunning_complete
        check ((dunning_invoice_id is null) = (payment_failed_at is null)
               and (dunning_invoice_id is null) = (grace_ends_at is null)),
    constraint billing_accounts_restricted_needs_dunning
        check (restricted_at is null or dunning_invoice_id is not null)
);
create trigger billing_accounts_touch before update on billing_accounts
    for each row execute function tenantkit_touch_updated_at();
select tenantkit_isolate_by_tenant('billing_accounts');
grant select, insert, update, delete on billing_accounts to tenantkit_app;

-- Every Stripe subscription of the tenant, as last fetched. A tenant usually has one; keeping
-- each by its id means an event about an old, cancelled subscription updates that row and
-- cannot overwrite the current one. The tenant's effective subscription is chosen in code
-- (a live one first, then the newest).
create table billing_subscriptions (
    tenant_id uuid not null references tenants (id) on delete cascade,
    id text not null,
    status text not null check (status in ('incomplete', 'incomplete_expired', 'trialing',
        'active', 'past_due', 'canceled', 'unpaid', 'paused')),
    -- The configured plan its price maps to; NULL when the price is no configured plan's.
    plan text,
    price_id text,
    billing_interval text check (billing_interval in ('month', 'year')),
    quantity bigint check (quantity >= 0),
    item_id text,
    current_period_end timestamptz,
    trial_end timestamptz,
    cancel_at_period_end boolean not null default false,
    canceled_at timestamptz,
    stripe_created_at timestamptz not null,
    synced_at timestamptz not null default now(),
    primary key (tenant_id, id)
);
select tenantkit_isolate_by_tenant('billing_subscriptions');
grant select, insert, update, delete on billing_subscriptions to tenantkit_app;

-- Invoices as last fetched, for the billing page and dunning. Amounts in minor units.
create table billing_invoices (
    tenant_id uuid not null references tenants (id) on delete cascade,
    id text not null,
    subscription_id text,
    number text,
    status text not null check (status in ('draft', 'open', 'paid', 'uncollectible', 'void')),
    currency text not null,
    amount_due bigint not null,
    amount_paid bigint not null,
    amount_remaining bigint not null,
    hosted_invoice_url text,
    invoice_pdf text,
    period_start timestamptz,
    period_end timestamptz,
    stripe_created_at timestamptz not null,
    synced_at timestamptz not null default now(),
    primary key (tenant_id, id)
);
create index billing_invoices_time_idx on billing_invoices (tenant_id, stripe_created_at desc, id desc);
select tenantkit_isolate_by_tenant('billing_invoices');
grant select, insert, update, delete on billing_invoices to tenantkit_app;

-- Webhook events, stored before anything else happens (the primary key makes a redelivery a
-- no-op), then processed by the `billing.event` job. Global: an event names a Stripe object,
-- and which tenant it concerns is only known once it is read. Not named tenant_id for the
-- same reason as platform_audit_events.subject_tenant_id: the table is not tenant-owned.
create table stripe_events (
    id text primary key,
    type text not null,
    created timestamptz not null,
    payload jsonb not null,
    received_at timestamptz not null default now(),
    processed_at timestamptz,
    -- What processing did ("applied", "unchanged", "ignored: ..."), for operators.
    outcome text,
    subject_tenant_id uuid references tenants (id) on delete set null
);
create index stripe_events_unprocessed_idx on stripe_events (received_at) where processed_at is null;
grant select, insert, update on stripe_events to tenantkit_app;

-- Which tenant a Stripe customer belongs to, for events that name only the customer
-- (invoices, customer updates). Global for the same reason as stripe_events; it maps one
-- opaque id to another and holds nothing else. Written in the same transaction that stores
-- the customer on the tenant's billing account.
create table stripe_customers (
    id text primary key,
    billed_tenant_id uuid not null references tenants (id) on delete cascade,
    created_at timestamptz not null default now()
);
create index stripe_customers_tenant_idx on stripe_customers (billed_tenant_id);
grant select, insert on stripe_customers to tenantkit_app;
