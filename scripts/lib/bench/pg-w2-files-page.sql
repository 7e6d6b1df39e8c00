-- W2's baseline: the statements GET /api/v1/tenants/{id}/files?limit=20&after=... runs
-- (captured with pg_stat_statements), in the one tenant transaction the request works in:
-- BEGIN and the tenant setting in one round trip (the server sends them as one simple query;
-- pgbench -M prepared pipelines them), the API key's check with its organisation's status (its
-- last use, recorded at most once a minute, is recent, so no UPDATE follows), one page of files
-- by name after the cursor.
-- Variables: tenant, key, after_name, after_id (pgbench -D).
\startpipeline
BEGIN;
select set_config('app.tenant_id', :tenant, true);
\endpipeline
select k.role, k.secret_hash, coalesce(k.last_used_at >= now() - interval '1 minute', false) as recently_used, t.status as tenant_status from api_keys k left join tenants t on t.id = k.tenant_id and t.id = :tenant where k.tenant_id = :tenant and k.id = :key and k.revoked_at is null;
select tenant_id, id, name, folder, size, content_type, sha256, uploader_user_id, created_at, updated_at from files where tenant_id = :tenant and (name, id) > (:after_name, :after_id) order by name, id limit 20;
COMMIT;
