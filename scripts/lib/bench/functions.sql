-- Helpers for scripts/bench, created in its throwaway database by the owner.

-- A ULID (apalis's job ids): 48 bits of milliseconds, 50 random bits, then n in 30 bits so
-- ids made in one statement never collide.
create or replace function bench_ulid(n bigint) returns text language plpgsql volatile as $$
declare
    alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    ms bigint := floor(extract(epoch from clock_timestamp()) * 1000);
    id text := '';
begin
    for i in reverse 9..0 loop
        id := id || substr(alphabet, ((ms >> (5 * i)) & 31)::int + 1, 1);
    end loop;
    for i in 1..10 loop
        id := id || substr(alphabet, floor(random() * 32)::int + 1, 1);
    end loop;
    for i in reverse 5..0 loop
        id := id || substr(alphabet, ((n >> (5 * i)) & 31)::int + 1, 1);
    end loop;
    return id;
end $$;

-- A UUIDv7 (the application's ids) for a given time.
create or replace function bench_uuid7(at timestamptz) returns uuid language sql volatile as $$
    select overlay(overlay(lpad(to_hex(floor(extract(epoch from at) * 1000)::bigint), 12, '0')
                           || substr(md5(random()::text), 1, 20) placing '7' from 13) placing '8' from 17)::uuid
$$;

-- The API key secret of a seeded key: 43 characters, as the server expects.
create or replace function bench_key_secret(tenant uuid, n int) returns text language sql immutable as $$
    select substr(md5('bench-key-' || tenant || '-' || n) || md5('bench-salt-' || tenant || '-' || n), 1, 43)
$$;
