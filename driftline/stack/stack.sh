#!/usr/bin/env bash
# The real local stack without Docker: Apache Kafka (single-node KRaft, from Maven
# Central jars, Java 17) and Debian's redis-server, both on 127.0.0.1.
#
#   stack.sh up      install what is missing, start what is not running, wait, print addresses
#   stack.sh down    stop exactly what `up` started (pid files; no broad kills)
#   stack.sh status  say what is running
#   stack.sh env     print `export KAFKA_BOOTSTRAP=... REDIS_URL=...` for a shell
#   stack.sh tools   install the tools the tests use (docker-compose, promtool, kcat)
#
# Bring your own cluster: when KAFKA_BOOTSTRAP and REDIS_URL are both set, `up` only
# checks that they answer. Ports: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093),
# REDIS_PORT (16379). State and logs: STACK_DIR (<repo>/.stack). Jars are cached in
# DRIFTLINE_CACHE (~/.cache/driftline).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
STACK_DIR=${STACK_DIR:-$repo/.stack}
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
REDIS_PORT=${REDIS_PORT:-16379}
CACHE=${DRIFTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/driftline}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
WAIT_SECONDS=${STACK_WAIT_SECONDS:-90}

# shellcheck source=lib.sh
source "$here/lib.sh"

STACK_PACKAGES=(java:openjdk-17-jre-headless mvn:maven redis-server:redis-server redis-cli:redis-tools kcat:kcat)
# Used by the tests only: compose validation without an engine, promtool, a real Prometheus.
TEST_PACKAGES=(docker-compose:docker-compose promtool:prometheus)

fetch_jars() {
  [ -f "$LIBS/.complete" ] && return 0
  say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -f "$here/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$LIBS" >"$CACHE/mvn.log" 2>&1 \
    || { tail -n 30 "$CACHE/mvn.log" >&2; die "maven could not fetch the Kafka jars (log: $CACHE/mvn.log)"; }
  # kafka_2.13 pulls slf4j-api 1.7 transitively; the pom pins 2.x, drop any stray 1.x.
  rm -f "$LIBS"/slf4j-api-1.*.jar
  touch "$LIBS/.complete"
}

port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1; }

check_port_free() { # check_port_free PORT NAME VAR
  if listening "$1"; then
    local who; who=$(port_owner "$1")
    die "port $1 (for $2) is already in use${who:+ by $who}; stop that process or choose another port with $3=<port>"
  fi
}

# Retention by size only (1 GiB per partition): the tests' events carry fixed Kafka
# timestamps days in the past, which time-based retention deleted before a worker read them.
kafka_conf() {
  local d=$STACK_DIR/kafka
  mkdir -p "$d/data"
  cat >"$d/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.ms=-1
log.retention.bytes=1073741824
log.segment.bytes=104857600
EOF
  cat >"$d/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $d/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
EOF
}

java_args() { # the broker's JVM flags and classpath, one per line
  printf '%s\n' -Xms256m -Xmx512m -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$STACK_DIR/kafka/log4j2.properties" \
    -cp "$LIBS/*"
}

java_run() { local a; mapfile -t a < <(java_args); java "${a[@]}" "$@"; }

kafka_ready() { kcat -L -b "127.0.0.1:$KAFKA_PORT" -m 3 >/dev/null 2>&1; }

start_kafka() {
  local d=$STACK_DIR/kafka pid=$STACK_DIR/kafka.pid
  if alive "$pid"; then kafka_ready && { say "kafka already running (pid $(cat "$pid"))"; return 0; }; fi
  if alive "$pid"; then
    say "kafka pid $(cat "$pid") is alive but not answering yet"
  else
    check_port_free "$KAFKA_PORT" kafka KAFKA_PORT
    check_port_free "$KAFKA_CONTROLLER_PORT" "the kafka controller" KAFKA_CONTROLLER_PORT
    kafka_conf
    if [ ! -f "$d/data/meta.properties" ]; then
      local id; id=$(java_run kafka.tools.StorageTool random-uuid 2>>"$d/format.log" | tail -n 1)
      [ -n "$id" ] || { tail -n 20 "$d/format.log" >&2; die "kafka StorageTool random-uuid failed"; }
      java_run kafka.tools.StorageTool format --standalone -t "$id" -c "$d/server.properties" \
        >>"$d/format.log" 2>&1 || { tail -n 20 "$d/format.log" >&2; die "formatting kafka storage failed"; }
    fi
    say "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
    local a; mapfile -t a < <(java_args)
    setsid nohup java "${a[@]}" kafka.Kafka "$d/server.properties" >"$d/stdout.log" 2>&1 </dev/null &
    echo $! >"$pid"
  fi
  local t=0
  until kafka_ready; do
    if ! alive "$pid"; then
      tail -n 40 "$d/server.log" "$d/stdout.log" >&2 2>/dev/null || true
      rm -f "$pid"; die "kafka exited during start-up (logs above; $d/server.log)"
    fi
    t=$((t + 1)); [ $t -ge "$WAIT_SECONDS" ] && {
      tail -n 40 "$d/server.log" >&2 || true
      die "kafka did not answer on 127.0.0.1:$KAFKA_PORT within ${WAIT_SECONDS}s (log tail above)"; }
    sleep 1
  done
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_redis() {
  local d=$STACK_DIR/redis pid=$STACK_DIR/redis.pid
  if alive "$pid" && redis_ready; then say "redis already running (pid $(cat "$pid"))"; return 0; fi
  if ! alive "$pid"; then
    check_port_free "$REDIS_PORT" redis REDIS_PORT
    mkdir -p "$d"
    say "starting redis on 127.0.0.1:$REDIS_PORT"
    setsid nohup redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$d" \
      --appendonly yes --appendfsync everysec --save "" --protected-mode no \
      --logfile "$d/redis.log" </dev/null >/dev/null 2>&1 &
    echo $! >"$pid"
  fi
  local t=0
  until redis_ready; do
    alive "$pid" || { tail -n 20 "$d/redis.log" >&2 || true; rm -f "$pid"; die "redis exited during start-up"; }
    t=$((t + 1)); [ $t -ge "$WAIT_SECONDS" ] && die "redis did not answer on port $REDIS_PORT"
    sleep 0.5
  done
}

stop_one() { # stop_one NAME
  local pid=$STACK_DIR/$1.pid
  if alive "$pid"; then
    local p; p=$(cat "$pid")
    say "stopping $1 (pid $p)"
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
    alive "$pid" && { say "$1 did not stop in 30s; killing"; kill -KILL "$p" 2>/dev/null || true; }
  fi
  rm -f "$pid"
}

print_env() {
  echo "export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
  echo "export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
}

byo() { [ -n "${KAFKA_BOOTSTRAP:-}" ] && [ -n "${REDIS_URL:-}" ]; }

case "${1:-up}" in
  up)
    if byo; then
      say "using KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP and REDIS_URL=$REDIS_URL (not starting a local stack)"
      exit 0
    fi
    mkdir -p "$STACK_DIR"
    install_packages "${STACK_PACKAGES[@]}"
    fetch_jars
    start_redis
    start_kafka
    print_env >"$STACK_DIR/env"
    say "ready: kafka 127.0.0.1:$KAFKA_PORT, redis redis://127.0.0.1:$REDIS_PORT/0 (env in $STACK_DIR/env)"
    ;;
  down)
    stop_one kafka
    stop_one redis
    ;;
  status)
    for s in kafka redis; do
      if alive "$STACK_DIR/$s.pid"; then echo "$s: running (pid $(cat "$STACK_DIR/$s.pid"))"; else echo "$s: stopped"; fi
    done
    ;;
  env) print_env ;;
  tools) install_packages "${STACK_PACKAGES[@]}" "${TEST_PACKAGES[@]}" ;;
  *) die "usage: stack.sh up|down|status|env|tools" ;;
esac
