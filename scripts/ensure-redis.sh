#!/usr/bin/env bash
# Makes sure a Redis answers at 127.0.0.1:${REDIS_PORT:-6379}: installs redis-server from
# Debian's packages when it is missing and starts it when nothing answers, persistent as the
# worker needs (append-only file fsynced every second, no eviction), its data in
# ${REDIS_DIR:-/tmp/payworker-redis-$port}.
set -euo pipefail
port="${REDIS_PORT:-6379}"

ping() {
  # Plain bash, so it works before redis-tools is installed.
  exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  local reply=""
  read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [[ "$reply" == +PONG* ]]
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server and redis-tools" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq redis-server redis-tools >/dev/null
fi

if ping; then
  echo "ensure-redis: Redis answers on 127.0.0.1:$port" >&2
  exit 0
fi

echo "ensure-redis: starting redis-server on 127.0.0.1:$port" >&2
dir="${REDIS_DIR:-/tmp/payworker-redis-$port}"
mkdir -p "$dir"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" \
  --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
  --logfile "/tmp/payworker-redis-$port.log"
for _ in $(seq 1 50); do
  if ping; then exit 0; fi
  sleep 0.1
done
echo "ensure-redis: Redis did not come up on 127.0.0.1:$port" >&2
exit 1
