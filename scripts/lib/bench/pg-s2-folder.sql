-- S2's baseline: the statements GET /api/v1/tenants/{id}/files?folder=/small&limit=100 runs, in
-- its one transaction (BEGIN and the tenant setting pipelined, as the server sends them in one
-- round trip; the key's last use is recent, so no UPDATE).
-- Variables: tenant, key, folder.
\startpipeline
BEGIN;
select set_config('app.tenant_id', :tenant, true);
\endpipeline
select k.role, k.secret_hash, coalesce(k.last_used_at >= now() - interval '1 minute', false) as recently_used, t.status as tenant_status from api_keys k left join tenants t on t.id = k.tenant_id and t.id = :tenant where k.tenant_id = :tenant and k.id = :key and k.revoked_at is null;
select tenant_id, id, name, folder, size, content_type, sha256, uploader_user_id, created_at, updated_at from files where tenant_id = :tenant and folder = :folder and (name, id) > ('', '00000000-0000-0000-0000-000000000000') order by name, id limit 100;
COMMIT;
