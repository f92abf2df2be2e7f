#!/usr/bin/env bash
# `make demo`: runs the example shop end to end against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
cd example_project

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Create the example database (fluxa_shop) if it is missing"
"$PY" - <<'PY'
import MySQLdb
conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="")
conn.cursor().execute("CREATE DATABASE IF NOT EXISTS fluxa_shop CHARACTER SET utf8mb4")
print("database fluxa_shop ready")
PY

step "System checks (entity definitions, no network)"
"$PY" manage.py check

step "Schema plan (--plan changes nothing)"
"$PY" manage.py fluxa_migrate --plan

step "Apply the schema"
"$PY" manage.py fluxa_migrate --noinput

step "Run it again: nothing left to do"
"$PY" manage.py fluxa_migrate --noinput

step "Tables in fluxa_shop"
"$PY" - <<'PY'
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
django.setup()
from fluxa_django import get_engine
engine = get_engine()
for schema in sorted(engine.schemas.values(), key=lambda s: s.table):
    columns = engine.mysql(schema.mysql_pool).query(f"SHOW COLUMNS FROM `{schema.table}`")
    print(f"{schema.table}: {len(columns)} columns, indexes: {', '.join(i.name for i in schema.indexes) or '-'}")
print("pools:", engine)
PY
printf '\nDemo finished.\n'
