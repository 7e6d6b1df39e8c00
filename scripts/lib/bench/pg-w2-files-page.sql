-- W2's baseline: the statements GET /api/v1/tenants/{id}/files?limit=20&after=... runs
-- (captured with pg_stat_statements), in the one tenant transaction the request works in:
-- BEGIN and the tenant setting in one round trip (the server sends them as one simple query;
-- pgbench -M prepared pipelines them), the API key's check (its last use, recorded at most once
-- a minute, is recent, so no UPDATE follows), is the tenant open, one page of files by name
-- after the cursor.
-- Variables: tenant, key, after_name, after_id (pgbench -D).
\startpipeline
BEGIN;
select set_config('app.tenant_id', :tenant, true);
\endpipeline
select role, secret_hash, coalesce(last_used_at >= now() - interval '1 minute', false) as recently_used from api_keys where tenant_id = :tenant and id = :key and revoked_at is null;
select id, slug, name, status, created_at from tenants where id = :tenant;
select tenant_id, id, name, folder, size, content_type, sha256, uploader_user_id, created_at, updated_at from files where tenant_id = :tenant and (name, id) > (:after_name, :after_id) order by name, id limit 20;
COMMIT;
