-- Resumable uploads. A client declares a file's name, folder and size, then sends its bytes in
-- chunks at increasing offsets; after a failure it asks where the upload stands and resumes
-- from there. Each chunk is its own object under t/<tenant>/uploads/<session>/; when the last
-- byte arrives the chunks are streamed, in order, into the file like any upload. The whole
-- size is reserved against the quota when the session starts, held by the session's
-- storage_pending_objects row (keyed by the session id), so chunks never fail on quota and
-- the sweep removes sessions left unfinished, with their chunks and reservation.
create table storage_upload_sessions (
    tenant_id uuid not null references tenants (id) on delete cascade,
    id uuid not null,
    name text not null check (octet_length(name) between 1 and 255),
    folder text not null check (folder = '/' or (folder ~ '^(/[^/]+)+$')),
    size bigint not null check (size > 0),
    received bigint not null default 0 check (received between 0 and size),
    chunks integer not null default 0 check (chunks >= 0),
    -- Set while a chunk is being written: a second writer is refused until then.
    writing_until timestamptz,
    uploader_user_id uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id)
);
create trigger storage_upload_sessions_touch before update on storage_upload_sessions
    for each row execute function tenantkit_touch_updated_at();
select tenantkit_isolate_by_tenant('storage_upload_sessions');
grant select, insert, update, delete on storage_upload_sessions to tenantkit_app;
