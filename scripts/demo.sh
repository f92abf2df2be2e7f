#!/usr/bin/env bash
# `make demo`: runs the example shop end to end against the real services:
# schema, code generation, a real HTTP server driven by real requests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
PORT=${FLUXA_DEMO_PORT:-8765}
cd example_project

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Recreate the example database (fluxa_shop)"
"$PY" - <<'PY'
import MySQLdb
conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="")
cur = conn.cursor()
cur.execute("DROP DATABASE IF EXISTS fluxa_shop")
cur.execute("CREATE DATABASE fluxa_shop CHARACTER SET utf8mb4")
print("database fluxa_shop ready")
import redis
stale = redis.Redis(host="127.0.0.1", port=6380, db=0)
keys = list(stale.scan_iter("fluxa:id:fluxa_shop:*"))
if keys:
    stale.delete(*keys)  # id counters of the old database: ids start at 1 again
PY

step "System checks (entity definitions, no network)"
"$PY" manage.py check

step "Generate the typed providers (shop/fluxa/)"
"$PY" manage.py fluxa_generate

step "Schema plan (--plan changes nothing)"
"$PY" manage.py fluxa_migrate --plan

step "Apply the schema, then run it again: nothing left to do"
"$PY" manage.py fluxa_migrate --noinput
"$PY" manage.py fluxa_migrate --noinput

step "Start the shop on 127.0.0.1:$PORT"
"$PY" manage.py runserver "127.0.0.1:$PORT" --noreload >"$PWD/../.fluxa/demo-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    if ! kill -0 $SERVER 2>/dev/null; then cat "$PWD/../.fluxa/demo-server.log"; exit 1; fi
    sleep 0.1
done

step "Drive it with real HTTP requests"
"$PY" demo_client.py "http://127.0.0.1:$PORT"

step "What MySQL holds now"
"$PY" - <<'PY'
import MySQLdb
conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="", db="fluxa_shop")
cur = conn.cursor()
cur.execute("SELECT id, name, price, status, tags, fake_delete FROM ProductEntity ORDER BY id")
for row in cur.fetchall():
    print(row)
PY
printf '\nDemo finished; the server was stopped.\n'
