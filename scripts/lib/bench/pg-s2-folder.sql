-- S2's baseline: the statements GET /api/v1/tenants/{id}/files?folder=/small&limit=100 runs.
-- Variables: tenant, key, folder.
BEGIN;
select set_config('app.tenant_id', :tenant, true);
select role, secret_hash from api_keys where tenant_id = :tenant and id = :key and revoked_at is null;
update api_keys set last_used_at = now() where tenant_id = :tenant and id = :key and (last_used_at is null or last_used_at < now() - interval '1 minute');
COMMIT;
BEGIN;
select set_config('app.tenant_id', :tenant, true);
select id, slug, name, status, created_at from tenants where id = :tenant;
select tenant_id, id, name, folder, size, content_type, sha256, uploader_user_id, created_at, updated_at from files where tenant_id = :tenant and folder = :folder and (name, id) > ('', '00000000-0000-0000-0000-000000000000') order by name, id limit 100;
COMMIT;
