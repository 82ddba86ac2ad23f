#!/usr/bin/env bash
# Crash soak: the SIGKILL test of crates/herald/tests/jetstream/crash.rs with many
# more kill/restart cycles (publishers with sync always and a consumer running at
# every kill; after each restart every acked message must be there once, byte for
# byte, confirmed acks kept, and old Msg-Ids still known as duplicates).
#
#   scripts/soak.sh            # 300 cycles, release build
#   CYCLES=2000 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES="${CYCLES:-300}"
HERALD_CRASH_CYCLES="$CYCLES" cargo test --release -p herald --test jetstream \
    crash::acked_messages_survive_repeated_sigkill_exactly_once -- --nocapture
