-- File storage: each tenant's files (the bytes live in the object store under
-- t/<tenant_id>/<file_id>; user names are never part of a key), the tenant's storage usage
-- against its plan's quota, and the objects that may exist in the store without a file row
-- (uploads under way, deletions not yet finished), so a crash can leave nothing behind that
-- cannot be found and cleaned.

create table files (
    tenant_id uuid not null references tenants (id) on delete cascade,
    id uuid not null,
    name text not null check (octet_length(name) between 1 and 255),
    -- Normalised: '/' or '/a/b' (no trailing slash, no empty, '.' or '..' segments).
    folder text not null check (folder = '/' or (folder ~ '^(/[^/]+)+$')),
    size bigint not null check (size >= 0),
    -- Sniffed from the bytes at upload; the client's declared type is never stored.
    content_type text not null,
    sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    uploader_user_id uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id),
    constraint files_folder_name_key unique (tenant_id, folder, name)
);
-- Listing pages: by name across folders, and by size (largest first).
create index files_name_idx on files (tenant_id, name, id);
create index files_size_idx on files (tenant_id, size desc, id desc);
create trigger files_touch before update on files
    for each row execute function tenantkit_touch_updated_at();
select tenantkit_isolate_by_tenant('files');
grant select, insert, update, delete on files to tenantkit_app;

-- What a tenant's files take: used_bytes is the sum of its files' sizes (changed in the same
-- transaction as the file rows); reserved_bytes is held by uploads under way, claimed as
-- their bytes arrive, so concurrent uploads can never together pass the quota.
create table storage_usage (
    tenant_id uuid not null references tenants (id) on delete cascade,
    used_bytes bigint not null default 0 check (used_bytes >= 0),
    reserved_bytes bigint not null default 0 check (reserved_bytes >= 0),
    updated_at timestamptz not null default now(),
    primary key (tenant_id)
);
create trigger storage_usage_touch before update on storage_usage
    for each row execute function tenantkit_touch_updated_at();
select tenantkit_isolate_by_tenant('storage_usage');
grant select, insert, update, delete on storage_usage to tenantkit_app;

-- An object that may exist in the store without a file row: an upload under way (holding
-- reserved_bytes of the tenant's reservation) or a deleted file whose object is still to be
-- removed. A row past sweep_after is abandoned (its process died): the sweep deletes the
-- object, returns the reservation and removes the row. Live uploads push sweep_after ahead
-- each time they reserve.
create table storage_pending_objects (
    tenant_id uuid not null references tenants (id) on delete cascade,
    file_id uuid not null,
    reserved_bytes bigint not null default 0 check (reserved_bytes >= 0),
    sweep_after timestamptz not null,
    created_at timestamptz not null default now(),
    primary key (tenant_id, file_id)
);
create index storage_pending_objects_sweep_idx on storage_pending_objects (tenant_id, sweep_after);
select tenantkit_isolate_by_tenant('storage_pending_objects');
grant select, insert, update, delete on storage_pending_objects to tenantkit_app;
