#!/usr/bin/env bash
# Makes sure the producer examples in jobs/examples/ can run, for the contract tests
# (tests/it/contract/): redis-py and cryptography for Python, node-redis for Node,
# PHP with the phpredis extension, and redis-cli. Idempotent: each step is skipped when
# what it provides is already there, so a second run takes about a second.
#
# Fresh Debian 12 machine, as root: pip (PyPI), npm ci (the npm registry, from the
# committed package-lock.json) and apt-get (Debian's packages, `apt-get update` only when
# something must be installed).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "ensure-producers: $*" >&2; }
start=$(date +%s)

# --- Python: redis-py (the producer) and cryptography (the card-encryption example).
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  say "no $py on PATH; install Python 3 first"
  exit 1
fi
py_missing=()
"$py" -c 'import redis' >/dev/null 2>&1 || py_missing+=(redis)
"$py" -c 'import cryptography.hazmat.primitives.ciphers.aead' >/dev/null 2>&1 ||
  py_missing+=(cryptography)
if ((${#py_missing[@]})); then
  say "pip install ${py_missing[*]}"
  # The same interpreter that runs the examples; PIP_BREAK_SYSTEM_PACKAGES lets it work on
  # a Debian-managed python3 too (PEP 668), where there is no pyenv or venv.
  PIP_BREAK_SYSTEM_PACKAGES=1 "$py" -m pip install --quiet --disable-pip-version-check \
    --root-user-action=ignore "${py_missing[@]}"
fi

# --- Node: node-redis, exactly the versions of the committed lock file.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "no node/npm on PATH; install Node.js 20 or later first"
  exit 1
fi
if [[ ! -d jobs/examples/node/node_modules/redis ]]; then
  say "npm ci in jobs/examples/node"
  (cd jobs/examples/node && npm ci --silent --no-audit --no-fund)
fi

# --- PHP with phpredis, and redis-cli: Debian's packages.
# (Asked of PHP itself: `php -m | grep -q redis` under pipefail fails at random on SIGPIPE.)
php_has_redis() {
  command -v php >/dev/null 2>&1 &&
    php -r 'exit(extension_loaded("redis") ? 0 : 1);' >/dev/null 2>&1
}
apt_missing=()
if ! php_has_redis; then
  apt_missing+=(php-cli php-redis)
fi
command -v redis-cli >/dev/null 2>&1 || apt_missing+=(redis-tools)
if ((${#apt_missing[@]})); then
  say "apt-get install ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  if ! php_has_redis; then
    say "php-redis installed but PHP does not load the redis extension"
    exit 1
  fi
fi

say "ready ($(($(date +%s) - start)) s)"
