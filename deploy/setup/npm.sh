#!/usr/bin/env bash
# Step 7: front-end packages from npm, only when the repository has a package.json at its root
# (the API's dashboard takes echarts from npm, its docs page swagger-ui-dist). No install scripts
# run (--ignore-scripts): the packages are static files, and swagger-ui-dist's dependency
# @scarf/scarf would otherwise report the install to its vendor over the network.
# Reinstalls only when package.json or the lock
# file changed since the last install (hash kept in node_modules/.yujing-installed).
set -euo pipefail
STEP=npm
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

[[ -f package.json ]] || exit 0   # nothing to do yet; say nothing
command -v npm >/dev/null 2>&1 || die "npm not found (run deploy/setup/apt.sh)"

STAMP="node_modules/.yujing-installed"
want="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" == "$want" ]]; then
    say "ok: node_modules up to date"
    exit 0
fi
mkdir -p "$VAR_DIR/log"
LOG="$VAR_DIR/log/npm-install.log"
if [[ -f package-lock.json ]]; then cmd=(npm ci); else cmd=(npm install); fi
say "${cmd[*]}"
"${cmd[@]}" --no-audit --no-fund --ignore-scripts >"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "${cmd[*]} failed (log: $LOG)"; }
echo "$want" >"$STAMP"
say "ok: node_modules installed"
