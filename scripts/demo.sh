#!/usr/bin/env bash
# `make demo`: runs the example shop end to end against the real services:
# schema, code generation, a real HTTP server driven by real requests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
PORT=${FLUXA_DEMO_PORT:-8765}
cd example_project

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export FLUXA_EXAMPLE_MYSQL=${FLUXA_EXAMPLE_MYSQL:-root:@tcp(127.0.0.1:3306)/fluxa_shop}
step "Recreate the example database ($FLUXA_EXAMPLE_MYSQL)"
"$PY" - <<'PY'
import os

import MySQLdb

from fluxa_django.config import parse_mysql_uri

uri = parse_mysql_uri(os.environ["FLUXA_EXAMPLE_MYSQL"])
kwargs = uri.connect_kwargs(with_database=False)
conn = MySQLdb.connect(**kwargs)
cur = conn.cursor()
cur.execute(f"DROP DATABASE IF EXISTS `{uri.database}`")
cur.execute(f"CREATE DATABASE `{uri.database}` CHARACTER SET utf8mb4")
# A new database has a new identity: cached rows of the old one are never read again
# (their Redis keys are in another namespace and expire), and ids start at 1.
print(f"database {uri.database} ready")
PY

step "Start the order analytics afresh (ClickHouse: chDB in .fluxa/chdb-shop unless FLUXA_EXAMPLE_CLICKHOUSE names a server)"
"$PY" - <<'PY'
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
import django

django.setup()
from fluxa_django import get_engine

pool = get_engine().clickhouse("analytics")
pool.exec("DROP TABLE IF EXISTS order_events")
print(f"order_events dropped on {pool.describe}")
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

step "Orders through Kafka: flush_async answers at once, fluxa_consume_async writes them"
# The shop's consumer group (FLUXA['ASYNC_FLUSH']) joins Tansu's group coordinator in about
# half its session timeout: 6 s here (librdkafka's default of 45 s would take 23 s).
# (It needs no ClickHouse: its own chDB path keeps it off the server's, which chDB locks.)
FLUXA_EXAMPLE_CLICKHOUSE="chdb://$PWD/../.fluxa/chdb-consumer" \
    "$PY" manage.py fluxa_consume_async --idle-timeout 3 --session-timeout-ms 6000 \
    --progress-interval 0 &
CONSUMER=$!
trap 'kill $CONSUMER $SERVER 2>/dev/null || true; wait 2>/dev/null || true' EXIT
"$PY" demo_client.py "http://127.0.0.1:$PORT" async-orders
wait $CONSUMER

step "Stop the shop (chDB opens its data path in one process at a time)"
kill $SERVER 2>/dev/null || true
wait $SERVER 2>/dev/null || true

step "Rebuild the products' Redis Search index from MySQL (searches keep working meanwhile)"
"$PY" manage.py fluxa_reindex ProductEntity

step "Revenue per product, from the order analytics in ClickHouse"
"$PY" manage.py shop_revenue

step "What MySQL holds now"
"$PY" - <<'PY'
import os

import MySQLdb

from fluxa_django.config import parse_mysql_uri

uri = parse_mysql_uri(os.environ["FLUXA_EXAMPLE_MYSQL"])
conn = MySQLdb.connect(**uri.connect_kwargs())
cur = conn.cursor()
cur.execute("SELECT id, name, price, status, tags, fake_delete FROM ProductEntity ORDER BY id")
for row in cur.fetchall():
    print(row)
PY
printf '\nDemo finished; the server was stopped.\n'
