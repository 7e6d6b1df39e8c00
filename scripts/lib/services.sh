# Shared by scripts/dev and scripts/test: install what is missing and start project-local
# PostgreSQL and Redis (and an SMTP inbox, and for tests an S3-compatible server) on loopback
# ports, with data under a given folder.
# Source it; functions are prefixed tk_. Every started service is recorded so tk_stop_all
# stops exactly what this run started and nothing else.

TK_STARTED=()
TK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

tk_say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
tk_die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# A cargo target folder shared across clones and commits keeps every superseded build of our own
# crates (gigabytes each time) until the disk is full: keep only the newest run's builds.
tk_prune_target() {
    command -v python3 >/dev/null || return 0
    python3 "$TK_ROOT/scripts/lib/prune_target.py" "$1" "$TK_ROOT/Cargo.toml" "$TK_ROOT/tests/fuzz/Cargo.toml" \
        || tk_say "could not prune $1 (continuing)"
}

# apt-get install, once per run, only for what is missing.
TK_APT_UPDATED=0
tk_apt_install() {
    command -v apt-get >/dev/null || tk_die "missing $*: install it with your package manager (no apt-get here)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ "$TK_APT_UPDATED" -eq 0 ]; then
        tk_say "apt-get update"
        $sudo apt-get update -qq >/dev/null || tk_die "apt-get update failed"
        TK_APT_UPDATED=1
    fi
    tk_say "installing $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null \
        || tk_die "apt-get install $* failed"
}

# initdb and pg_ctl: on PATH, or where Debian puts them (newest version first).
tk_pg_bin() {
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"; return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r | head -n1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    return 1
}

tk_ensure_postgres() {
    TK_PG_BIN=$(tk_pg_bin) || { tk_apt_install postgresql postgresql-contrib; TK_PG_BIN=$(tk_pg_bin) || tk_die "PostgreSQL installed but initdb not found"; }
    command -v psql >/dev/null || tk_apt_install postgresql-client
}

tk_ensure_redis() {
    command -v redis-server >/dev/null || tk_apt_install redis-server
    command -v redis-cli >/dev/null || tk_apt_install redis-tools
}

tk_port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

tk_require_free_port() {
    if tk_port_taken "$1"; then
        tk_die "port $1 ($2) is already in use on 127.0.0.1: stop what uses it or set $3"
    fi
}

# A free loopback port chosen by the kernel.
tk_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Runs a command as the owner of PostgreSQL's data: initdb refuses to run as root.
tk_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# tk_start_postgres DIR PORT durable|throwaway
tk_start_postgres() {
    local dir=$1 port=$2 mode=$3
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$dir"
        runuser -u postgres -- test -x "$dir" \
            || tk_die "the postgres user cannot reach $dir (a parent folder is private); use a folder under /tmp or /work"
    fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        tk_say "initialising PostgreSQL in $dir/data"
        tk_as_pg "$TK_PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
            || tk_die "initdb failed: see $dir/initdb.log"
    fi
    local opts="-p $port -k $dir -c listen_addresses=127.0.0.1"
    [ "$mode" = throwaway ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    tk_say "starting PostgreSQL on 127.0.0.1:$port"
    tk_as_pg "$TK_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$opts" start >/dev/null \
        || tk_die "PostgreSQL did not start: see $dir/postgres.log"
    TK_STARTED+=("postgres:$dir")
}

tk_stop_postgres() {
    tk_as_pg "$TK_PG_BIN/pg_ctl" -D "$1/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
        || tk_as_pg "$TK_PG_BIN/pg_ctl" -D "$1/data" -m immediate -w stop >/dev/null 2>&1 || true
}

# tk_start_redis DIR PORT
tk_start_redis() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    tk_say "starting Redis on 127.0.0.1:$port"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" ${TK_REDIS_ARGS:-} >/dev/null \
        || tk_die "Redis did not start: see $dir/redis.log"
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$port" ping >/dev/null 2>&1 || tk_die "Redis did not answer: see $dir/redis.log"
    TK_STARTED+=("redis:$port")
}

# An S3-compatible server for the storage tests: moto's (PyPI, ~50 s to install), state in
# memory. Presigned URLs work against it like against S3.
tk_ensure_moto() {
    python3 -c 'import moto.server, flask' 2>/dev/null && return 0
    tk_say "installing moto[server] (S3-compatible server for the storage tests)"
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]>=5,<6" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "moto[server]>=5,<6" \
        || tk_die "cannot install moto[server]"
}

# tk_start_s3 DIR PORT: moto's S3 server on 127.0.0.1:PORT, its log in DIR.
tk_start_s3() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    tk_say "starting the S3-compatible server (moto) on 127.0.0.1:$port"
    tk_spawn s3 python3 -m moto.server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1
    # Its imports take a few seconds on a busy machine.
    tk_wait_port "$port" 600 || tk_die "the S3 server did not start: see $dir/moto.log"
}

# Starts a background process, recording its pid for tk_stop_all (and, when TK_PID_DIR is
# set, in a file, so a later run can stop it if this one is killed before it can).
tk_spawn() {
    local name=$1; shift
    "$@" &
    TK_STARTED+=("pid:$!:$name")
    if [ -n "${TK_PID_DIR:-}" ]; then
        mkdir -p "$TK_PID_DIR"
        echo "$! $1" > "$TK_PID_DIR/$name.pid"
    fi
}

tk_wait_port() {
    for _ in $(seq "${2:-100}"); do tk_port_taken "$1" && return 0; sleep 0.1; done
    return 1
}

tk_stop_all() {
    # Runs from EXIT traps: one failed stop must not abandon the rest.
    set +e
    local i entry
    for ((i=${#TK_STARTED[@]}-1; i>=0; i--)); do
        entry=${TK_STARTED[$i]}
        case $entry in
            pid:*) local pid=${entry#pid:} name=${entry##*:}; pid=${pid%%:*}
                   [ -n "${TK_PID_DIR:-}" ] && rm -f "$TK_PID_DIR/$name.pid"
                   kill -TERM "$pid" 2>/dev/null && { for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$pid" 2>/dev/null; } ;;
            redis:*) redis-cli -p "${entry#redis:}" shutdown nosave >/dev/null 2>&1 || true ;;
            postgres:*) tk_stop_postgres "${entry#postgres:}" ;;
        esac
    done
    TK_STARTED=()
}

# Creates the database, migrates it as the owner and lets the application role log in.
# tk_prepare_database PORT DBNAME APP_PASSWORD
tk_prepare_database() {
    local port=$1 db=$2 password=$3
    local owner="postgres://postgres@127.0.0.1:$port"
    if ! psql "$owner/postgres" -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
        psql "$owner/postgres" -qc "create database $db" >/dev/null || tk_die "cannot create database $db"
    fi
    "$TK_CLI" migrate --database-url "$owner/$db" || tk_die "migrations failed"
    psql "$owner/$db" -qc "alter role tenantkit_app login password '$password'" >/dev/null
}

# Stops what a previous scripts/dev started under $1 (.dev) and could not stop (it was killed
# outright): PostgreSQL by its data folder, Redis by its pid file, and the processes recorded in
# $1/pids (pid and program), each only if that pid still runs that program.
tk_stop_dev_leftovers() {
    local state=$1 file pid program
    if [ -f "$state/postgres/data/postmaster.pid" ] && TK_PG_BIN=${TK_PG_BIN:-$(tk_pg_bin)}; then
        if tk_as_pg "$TK_PG_BIN/pg_ctl" -D "$state/postgres/data" status >/dev/null 2>&1; then
            tk_say "stopping the PostgreSQL an earlier run left behind"
            tk_stop_postgres "$state/postgres"
        fi
    fi
    if [ -f "$state/redis/redis.pid" ]; then
        pid=$(cat "$state/redis/redis.pid")
        if grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
            tk_say "stopping the Redis an earlier run left behind"
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    fi
    for file in "$state"/pids/*.pid; do
        [ -f "$file" ] || continue
        read -r pid program < "$file"
        if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$program"; then
            tk_say "stopping the $(basename "$file" .pid) an earlier run left behind"
            kill -TERM "$pid" 2>/dev/null
        fi
        rm -f "$file"
    done
    return 0
}

# smtp-sink and smtp-source (postfix's test tools) without configuring or starting a mail
# system: postfix is preseeded to "No configuration".
tk_ensure_smtp_tools() {
    command -v smtp-sink >/dev/null && command -v smtp-source >/dev/null && return 0
    [ -x /usr/sbin/smtp-sink ] && [ -x /usr/sbin/smtp-source ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    command -v debconf-set-selections >/dev/null \
        && echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    tk_apt_install postfix
}

# tk_pg_preload DIR PORT LIBRARY: loads a shared library (pg_stat_statements) into the
# PostgreSQL that tk_start_postgres started in DIR, restarting it with its first options.
tk_pg_preload() {
    local dir=$1 port=$2 library=$3
    psql "postgres://postgres@127.0.0.1:$port/postgres" -qc "alter system set shared_preload_libraries = '$library'" >/dev/null \
        || tk_die "cannot set shared_preload_libraries"
    tk_as_pg "$TK_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 restart >/dev/null \
        || tk_die "PostgreSQL did not restart: see $dir/postgres.log"
}
