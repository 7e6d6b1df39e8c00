-- Marks the process's consumers ($1, apalis worker names) alive, in one statement.
update apalis.workers set last_seen = now() where id = any($1::text[])
