-- Registers a consumer ($1, its apalis worker name) of queue $2 (apalis-postgres's
-- queries/worker/register.sql): jobs it claims reference it.
insert into apalis.workers (id, worker_type, storage_name, layers, last_seen)
values ($1, $2, 'PgStorage', $3, now())
on conflict (id) do update
set worker_type = excluded.worker_type,
    storage_name = excluded.storage_name,
    layers = excluded.layers,
    last_seen = now()
