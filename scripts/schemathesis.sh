#!/usr/bin/env bash
# Property-based test of Herald's HTTP API (/v1) against its own OpenAPI
# document: schemathesis generates requests from /v1/openapi.json and fails
# on any 5xx and any status, media type, header or body the document does
# not describe.
#
#   scripts/schemathesis.sh http://127.0.0.1:8333
#
# Installs schemathesis (pinned) into a venv under the cache directory on
# first use. Seeds a stream, a consumer and a bucket named as the document's
# examples, so the example phase reaches real resources. Exits non-zero on
# any failure. Environment:
#   HERALD_CACHE_DIR                where the venv lives [~/.cache/herald]
#   HERALD_SCHEMATHESIS_EXAMPLES    test cases per operation [50]
#   HERALD_SCHEMATHESIS_SEED        random seed [1]
set -euo pipefail

base="${1:?usage: scripts/schemathesis.sh <http base url, e.g. http://127.0.0.1:8333>}"
base="${base%/}"
version=4.32.5
cache="${HERALD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/herald}"
venv="$cache/schemathesis-$version"
examples="${HERALD_SCHEMATHESIS_EXAMPLES:-50}"
seed="${HERALD_SCHEMATHESIS_SEED:-1}"

if [[ ! -x "$venv/bin/schemathesis" ]]; then
    echo "installing schemathesis $version into $venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

# Resources named like the document's examples (ORDERS, worker, config/mode).
seed_request() {
    local method="$1" path="$2" type="$3" body="$4"
    curl --silent --show-error --max-time 30 --output /dev/null --write-out "%{http_code} $method $path\n" \
        -X "$method" -H "content-type: $type" --data-binary "$body" "$base$path"
}
seed_request POST /v1/streams application/json '{"name":"ORDERS","subjects":["orders.>"]}'
seed_request POST /v1/events/orders.created application/json '{"order":1}'
seed_request POST /v1/streams/ORDERS/consumers application/json '{"durable_name":"worker","ack_policy":"explicit"}'
seed_request PUT /v1/kv/config application/json '{"history":5}'
seed_request PUT /v1/kv/config/mode application/octet-stream 'fast'

exclude=(
    # GET /v1/events/{subject} streams (SSE, WebSocket) until the client leaves.
    --exclude-operation-id subscribeEvents
)

# schemathesis keeps a cache in its working directory: not the checkout.
mkdir -p "$cache/run"
cd "$cache/run"
exec "$venv/bin/schemathesis" run "$base/v1/openapi.json" \
    --url "$base" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --phases examples,coverage,fuzzing \
    --mode all \
    --seed "$seed" \
    --max-examples "$examples" \
    --workers 2 \
    --request-timeout 30 \
    --suppress-health-check all \
    "${exclude[@]}"
