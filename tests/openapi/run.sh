#!/usr/bin/env bash
# The API against its own OpenAPI document (called by .ci/run): schemathesis
# with every check, on a small simulated book served with the committed
# model, once on SQLite and once on PostgreSQL. Fails on any failure
# schemathesis reports. Its key is an admin's bound to one agent (so a lease
# needs no agent_id); tests/openapi/hooks.py moves an action's clock-bound
# fields into range.
#
# schemathesis comes from tests/openapi/requirements.txt into a virtual
# environment cached outside the clone. Its reports (JUnit) go to
# $PRIORITIZE_ARTIFACTS/openapi (default .ci/artifacts/openapi).
#
#   tests/openapi/run.sh [sqlite|postgres]...   (default: both)
#
# PostgreSQL's URL comes from PRIORITIZE_TEST_POSTGRES_URL; without one the
# PostgreSQL run is skipped, or fails when PRIORITIZE_REQUIRE_POSTGRES=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/prioritize}
artifacts=${PRIORITIZE_ARTIFACTS:-$root/.ci/artifacts}/openapi
examples=${PRIORITIZE_SCHEMATHESIS_EXAMPLES:-40}
[ -x "$bin" ] || { echo "openapi test: no binary at $bin (run cargo build first)" >&2; exit 1; }
mkdir -p "$artifacts"

requirements=$here/requirements.txt
venv=${PRIORITIZE_ST_VENV:-$HOME/.cache/prioritize-schemathesis/venv-$(sha256sum "$requirements" | cut -c1-12)}
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$venv/.complete"
fi

work=$(mktemp -d)
server=""
database=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "$database" ]; then psql "$PRIORITIZE_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# A cancelled or timed-out run still stops its server and drops its database.
trap 'exit 143' TERM
trap 'exit 130' INT

"$bin" simulate --accounts 2000 --seed 5 --out "$work/data" >/dev/null

key="openapi-test-admin-key"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat > "$work/serve.toml" <<TOML
[strategies.call]
capacity = 150
[[api_keys]]
id = "schemathesis"
role = "admin"
agent_id = "schemathesis"
key_sha256 = "$(sha "$key")"
TOML
# Most generated account ids name accounts of the book, so that actions,
# unblocks and account views reach more than a 404.
{
  echo '[dictionaries.accounts]'
  printf 'values = [%s]\n' "$(seq -f '"ACC-%08g"' 1 40 | paste -sd,)"
  echo '[parameters]'
  echo '"path.account_id" = { dictionary = "accounts", probability = 0.8 }'
} > "$work/schemathesis.toml"

# Serves the book on the store at $1 until its plan is in place; sets $server and $base.
start() {
  "$bin" serve --data "$work/data" --model "$root/models/default" --config "$work/serve.toml" \
    --db "$1" --listen 127.0.0.1:0 --as-of 2026-09-30 >"$work/serve.out" 2>"$work/serve.err" &
  server=$!
  for _ in $(seq 600); do
    base=$(grep -o 'http://[0-9.:]*' "$work/serve.out" 2>/dev/null | head -1 || true)
    if [ -n "$base" ] && curl -sf "$base/readyz" >/dev/null 2>&1; then
      return
    fi
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.2
  done
  echo "openapi test: the server was not ready in 2 minutes" >&2
  cat "$work/serve.err" >&2
  exit 1
}
stop() { kill "$server" 2>/dev/null || true; wait "$server" || true; server=""; }

run() {
  local store=$1
  echo "schemathesis, all checks, on $store (up to $examples examples per operation)"
  (cd "$work" && PYTHONPATH="$here" SCHEMATHESIS_HOOKS=hooks "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $key" \
    --max-examples "$examples" \
    --seed 7 \
    --generation-database none \
    --workers 2 \
    --report junit --report-dir "$artifacts/$store" \
    --no-color)
}

stores=("$@")
[ ${#stores[@]} -gt 0 ] || stores=(sqlite postgres)
for store in "${stores[@]}"; do
  case $store in
    sqlite)
      start "sqlite://$work/store.db"
      run sqlite
      stop
      ;;
    postgres)
      if [ -z "${PRIORITIZE_TEST_POSTGRES_URL:-}" ]; then
        if [ "${PRIORITIZE_REQUIRE_POSTGRES:-}" = 1 ]; then
          echo "openapi test: PRIORITIZE_TEST_POSTGRES_URL is not set and PRIORITIZE_REQUIRE_POSTGRES=1" >&2
          exit 1
        fi
        echo "openapi test: no PRIORITIZE_TEST_POSTGRES_URL, PostgreSQL skipped"
        continue
      fi
      database="prioritize_openapi_$$"
      psql "$PRIORITIZE_TEST_POSTGRES_URL" -qc "CREATE DATABASE $database" >/dev/null
      # The same server and options (sslmode …), another database.
      url=$PRIORITIZE_TEST_POSTGRES_URL query=""
      if [[ $url == *\?* ]]; then query="?${url#*\?}"; url=${url%%\?*}; fi
      [[ ${url#*://} == */* ]] || url="$url/"
      start "${url%/*}/$database$query"
      run postgres
      stop
      ;;
    *)
      echo "openapi test: unknown store $store (sqlite or postgres)" >&2
      exit 1
      ;;
  esac
done
