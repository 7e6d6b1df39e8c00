-- The admin's tenant search at 100,000 tenants.
--
-- Under row level security PostgreSQL may only evaluate a query's own conditions before the
-- policies' when they are leakproof. `lower()` and `LIKE` are not, so every search and every
-- page sorted by name was a filter over the whole table (300 ms at 100,000 tenants) however
-- good the indexes. Two changes make them index scans again:
--   * `name_key`, the database's own lowercase of the name, stored: sorting and paging compare
--     it with `<`, `>` and `=`, which are leakproof. The cursor carries this value, so paging
--     and search agree with the database's lowercase (Greek final sigma, dotted capital I)
--     rather than with the application's.
--   * the search itself runs in `tenantkit_directory_matches`, a SECURITY DEFINER function
--     owned by `tenantkit_directory`: a role no login may use, whose only policy lets it read
--     every tenant, and which answers nothing at all outside the audited platform path
--     (`tenantkit_platform_access()`). It returns tenant ids only; the page itself is read by
--     the caller under the caller's policies.

alter table tenants add column name_key text generated always as (lower(name)) stored;
drop index tenants_name_idx;
drop index tenants_name_trgm_idx;
create index tenants_name_key_idx on tenants (name_key, id);
create index tenants_name_key_trgm_idx on tenants using gin (name_key gin_trgm_ops);

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'tenantkit_directory') then
        create role tenantkit_directory nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
    end if;
end
$$;
-- The owner must be able to hand the function to the role (a superuser always can).
grant tenantkit_directory to current_user;
grant usage on schema public to tenantkit_directory;
grant select on tenants, memberships, users to tenantkit_directory;
create policy directory_read on tenants for select to tenantkit_directory using (true);
create policy directory_read on memberships for select to tenantkit_directory using (true);

-- Ids of the tenants whose name or slug contains `search`, or that have a member whose email
-- starts with it. `search` is already escaped for LIKE; it is lowercased here, as the names
-- are. Custom plans: the patterns are constants to the planner, so the email prefix becomes an
-- index range and each branch uses its own index (trigram on name_key and slug).
create function tenantkit_directory_matches(search text) returns setof uuid
    language plpgsql stable security definer
    set search_path = pg_catalog, public
    set plan_cache_mode = force_custom_plan
    rows 100
    as $$
declare
    pattern constant text := lower(search);
begin
    if not tenantkit_platform_access() then
        return;
    end if;
    return query
        select t.id from tenants t where t.name_key like '%' || pattern || '%'
        union
        select t.id from tenants t where t.slug like '%' || pattern || '%'
        union
        select m.tenant_id from users u join memberships m on m.user_id = u.id
        where lower(u.email) like pattern || '%';
end
$$;
alter function tenantkit_directory_matches(text) owner to tenantkit_directory;
revoke execute on function tenantkit_directory_matches(text) from public;
grant execute on function tenantkit_directory_matches(text) to tenantkit_app;
