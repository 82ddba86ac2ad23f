#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks (issue 4 compares
# Herald's event appends with a Postgres event table on the same machine).
#
#   scripts/postgres.sh start <dir> [port]   # port defaults to 54329
#   scripts/postgres.sh stop <dir>
#
# `start` initializes a cluster in <dir> if it holds none (trust auth, user
# `postgres`), writes <dir>/herald.conf (listen on 127.0.0.1:<port>, unix
# socket in <dir>, durability settings), starts the server, creates the
# database `herald` and prints its URL as the last line on stdout:
#
#   postgres://postgres@127.0.0.1:<port>/herald
#
# Everything else goes to stderr; the server log is <dir>/postgres.log. A
# server left running in <dir> is stopped first, so `start` can be repeated.
# `stop` is a no-op when nothing runs there. Nothing is deleted: rm -rf <dir>
# after `stop` to throw the cluster away.
#
# PostgreSQL's binaries are taken from /usr/lib/postgresql/<newest>/bin, else
# from PATH; when neither has them and we are root, `apt-get install
# postgresql` is tried (Debian). Postgres refuses to run as root, so as root
# the server runs as the `postgres` system user (created if missing).
set -euo pipefail

DEFAULT_PORT=54329
HOST=127.0.0.1

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}
say() { echo "postgres.sh: $*" >&2; }

usage() {
    echo "usage: $0 start <dir> [port] | stop <dir>" >&2
    exit 2
}

IS_ROOT=0
if [[ "$(id -u)" == 0 ]]; then IS_ROOT=1; fi

# Runs a PostgreSQL program as the user that owns the cluster.
as_pg() {
    if ((IS_ROOT)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Sets PG_BIN to a directory holding initdb, pg_ctl, pg_isready and psql.
find_bin() {
    local dir dirs
    # Debian installs each major version side by side; take the newest.
    mapfile -t dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r)
    for dir in "${dirs[@]}"; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            PG_BIN="$dir"
            return 0
        fi
    done
    # Debian's /usr/bin has psql and pg_isready wrappers but not initdb, so
    # the directory of initdb is the one to use.
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        PG_BIN="$(dirname "$(readlink -f "$(command -v initdb)")")"
        [[ -x "$PG_BIN/pg_ctl" ]] && return 0
    fi
    return 1
}

install_postgres() {
    ((IS_ROOT)) || die "PostgreSQL is not installed and we are not root to apt-get it; install PostgreSQL (initdb, pg_ctl) first"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get to install it"
    say "PostgreSQL not found; installing it with apt-get (quietly)"
    # Debian's package would create and start a cluster on port 5432 of its
    # own; this script only wants the binaries.
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq postgresql >/dev/null 2>&1; then
        # A fresh machine may not have the package lists yet.
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq postgresql >/dev/null 2>&1 ||
            die "apt-get install postgresql failed; install PostgreSQL (initdb, pg_ctl) by hand"
    fi
}

ensure_user() {
    ((IS_ROOT)) || return 0
    if ! id postgres >/dev/null 2>&1; then
        say "creating the system user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
            --shell /bin/bash postgres ||
            die "could not create the system user postgres"
    fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# A postmaster killed with SIGKILL stays a zombie until its parent (init,
# after pg_ctl daemonized it) reaps it, and some container inits are slow to.
# pg_ctl and postgres both take a zombie's PID for a running server, so lock
# files (the data directory's and the unix socket's, whose first line is the
# PID) naming a dead or zombie process are removed here.
clear_stale_locks() {
    local lock pid state
    for lock in "$DIR/postmaster.pid" "$DIR"/.s.PGSQL.*.lock; do
        [[ -f "$lock" ]] || continue
        pid="$(head -1 "$lock")"
        [[ "$pid" =~ ^-?[0-9]+$ ]] || continue
        pid="${pid#-}"
        # The state follows the command name, which is in parentheses.
        state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1 || true)"
        if [[ -z "$state" || "$state" == Z ]]; then
            say "removing $lock of dead server process $pid"
            rm -f "$lock"
            if [[ "$lock" == *.lock ]]; then rm -f "${lock%.lock}"; fi
        fi
    done
}

# 0: a server runs in $DIR; 1: none does (or there is no cluster).
running() {
    [[ -f "$DIR/PG_VERSION" ]] || return 1
    clear_stale_locks
    as_pg "$PG_BIN/pg_ctl" status -D "$DIR" >/dev/null 2>&1
}

stop_server() {
    if running; then
        say "stopping the server in $DIR"
        as_pg "$PG_BIN/pg_ctl" stop -D "$DIR" -m fast -w -t 60 >/dev/null ||
            die "pg_ctl stop failed; see $DIR/postgres.log"
    fi
}

start() {
    local port="$1"
    [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "bad port: $port"
    # The unix socket path must fit in sockaddr_un (107 bytes), and the
    # settings below are written between single quotes.
    [[ "$DIR" != *"'"* && "$DIR" != *" "* ]] || die "the directory may not contain spaces or quotes: $DIR"

    ensure_user
    mkdir -p "$DIR"
    if ((IS_ROOT)); then
        chown postgres: "$DIR"
        as_pg test -w "$DIR" -a -x "$DIR" ||
            die "the postgres user cannot enter $DIR (is a parent directory private, like /root?); use a directory under /tmp"
    fi
    chmod 700 "$DIR"

    stop_server

    if [[ ! -f "$DIR/PG_VERSION" ]]; then
        if [[ -n "$(ls -A "$DIR")" ]]; then
            die "$DIR is neither empty nor a PostgreSQL cluster; refusing to initialize it"
        fi
        say "initializing a cluster in $DIR"
        as_pg "$PG_BIN/initdb" -D "$DIR" -U postgres --auth=trust --encoding=UTF8 --no-locale \
            >"$DIR.initdb.log" 2>&1 || {
            cat "$DIR.initdb.log" >&2
            die "initdb failed"
        }
        rm -f "$DIR.initdb.log"
        echo "include_if_exists = 'herald.conf'" | as_pg tee -a "$DIR/postgresql.conf" >/dev/null
    fi

    if port_open "$port"; then
        die "$HOST:$port is already in use; stop whatever listens there or pass another port"
    fi

    # Rewritten at every start: the port may differ from the last one.
    as_pg tee "$DIR/herald.conf" >/dev/null <<EOF
# Written by scripts/postgres.sh start; rewritten at every start.
listen_addresses = '$HOST'
port = $port
unix_socket_directories = '$DIR'
# The defaults, stated so a reader of a benchmark sees them: every commit
# waits until its WAL is flushed to disk, and flushes really reach the disk.
synchronous_commit = on
fsync = on
full_page_writes = on
# Room for one connection per aggregate of a benchmark, and a few more.
max_connections = 300
EOF

    say "starting PostgreSQL ($("$PG_BIN/postgres" --version)) on $HOST:$port"
    as_pg "$PG_BIN/pg_ctl" start -D "$DIR" -l "$DIR/postgres.log" -w -t 60 >/dev/null || {
        tail -20 "$DIR/postgres.log" >&2 || true
        die "the server did not start; log: $DIR/postgres.log"
    }
    local i
    for ((i = 0; i < 100; i++)); do
        if "$PG_BIN/pg_isready" -q -h "$HOST" -p "$port" -U postgres; then break; fi
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h "$HOST" -p "$port" -U postgres ||
        die "the server does not accept connections on $HOST:$port; log: $DIR/postgres.log"

    local psql=("$PG_BIN/psql" -h "$HOST" -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1)
    if [[ "$("${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'herald'")" != 1 ]]; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE herald" >/dev/null || die "could not create the database herald"
    fi
    echo "postgres://postgres@$HOST:$port/herald"
}

[[ $# -ge 2 ]] || usage
CMD="$1"
DIR="$2"
[[ -n "$DIR" ]] || usage
# Absolute, so pg_ctl (run as another user, from another directory) finds it.
DIR="$(realpath -m -- "$DIR")"

PG_BIN=""
case "$CMD" in
    start)
        [[ $# -le 3 ]] || usage
        find_bin || { install_postgres && find_bin; } || die "PostgreSQL installed, but initdb and pg_ctl are not found"
        start "${3:-$DEFAULT_PORT}"
        ;;
    stop)
        [[ $# -eq 2 ]] || usage
        # Nothing to stop without a cluster, or without PostgreSQL at all.
        [[ -f "$DIR/PG_VERSION" ]] || exit 0
        find_bin || exit 0
        stop_server
        ;;
    *) usage ;;
esac
