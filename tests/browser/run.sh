#!/usr/bin/env bash
# The managers' dashboard in a real browser (called by .ci/run).
#
# Builds a small simulated book and a model, serves two planning days one
# after the other on one store (so the page has a previous plan to compare
# with), then drives /dashboard in Debian's headless Chromium with
# playwright-core: a wrong key, a key without the manager role, the heat map
# against the API, the CSV download, a phone-sized screen. Screenshots go to
# $PRIORITIZE_ARTIFACTS (default .ci/artifacts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/prioritize}
export PRIORITIZE_ARTIFACTS=${PRIORITIZE_ARTIFACTS:-$root/.ci/artifacts}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$bin" ] || { echo "browser test: no binary at $bin (run cargo build first)" >&2; exit 1; }
[ -x "$CHROMIUM" ] || { echo "browser test: $CHROMIUM is missing (apt-get install chromium)" >&2; exit 1; }
mkdir -p "$PRIORITIZE_ARTIFACTS"

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" simulate --accounts 3000 --seed 11 --out "$work/data" >/dev/null
"$bin" train --data "$work/data" --out "$work/model" --response-learner scorecard --search 1 >/dev/null

export MANAGER_KEY="browser-test-manager-key"
export COLLECTOR_KEY="browser-test-collector-key"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat > "$work/serve.toml" <<TOML
[strategies.call]
capacity = 150
[strategies.demand_letter]
capacity = 300
[strategies.settlement_offer]
capacity = 40
[strategies.field_visit]
capacity = 10
[strategies.legal]
capacity = 10
[[api_keys]]
role = "manager"
key_sha256 = "$(sha "$MANAGER_KEY")"
[[api_keys]]
role = "collector"
key_sha256 = "$(sha "$COLLECTOR_KEY")"
TOML

# Serves the book as of $1 until that day's plan is in place (a restart
# serves the stored plan while it builds the new one); sets $server and $BASE_URL.
start() {
  "$bin" serve --data "$work/data" --model "$work/model" --config "$work/serve.toml" \
    --db "sqlite://$work/store.db" --listen 127.0.0.1:0 --as-of "$1" >"$work/serve.out" 2>"$work/serve.err" &
  server=$!
  for _ in $(seq 600); do
    BASE_URL=$(grep -o 'http://[0-9.:]*' "$work/serve.out" 2>/dev/null | head -1 || true)
    if [ -n "$BASE_URL" ] && curl -sf "$BASE_URL/readyz" 2>/dev/null | grep -q "\"day\":\"$1\""; then
      export BASE_URL
      return
    fi
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.2
  done
  echo "browser test: the server was not ready in 2 minutes" >&2
  cat "$work/serve.err" >&2
  exit 1
}
stop() { kill "$server"; wait "$server" || true; server=""; }

start 2026-09-23
stop
start 2026-09-30
cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error
node dashboard.mjs
