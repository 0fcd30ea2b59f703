#!/usr/bin/env bash
# Step 5: .venv with the project installed editable with its dev extras, and a `yujing` wrapper on
# PATH (/usr/local/bin/yujing, or $YUJING_BIN_DIR) that runs the venv's (lib.sh, install_cli_wrapper).
# Reinstalls only when pyproject.toml (or the interpreter, or the set of top-level packages)
# changed since the last install:
# the hash is kept in .venv/.yujing-installed.
set -euo pipefail
STEP=python
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.yujing-installed"
PIP_STAMP="$VENV/.yujing-pip-upgraded"

if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
    say "removing broken $VENV"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating .venv with $("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))"
    "$PYTHON" -m venv "$VENV"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
mkdir -p "$VAR_DIR/log"
LOG="$VAR_DIR/log/pip-install.log"
pip_q() {  # pip_q ARGS... -> pip quietly, its output in $LOG, shown when it fails
    if ! "$VENV/bin/python" -m pip "$@" >"$LOG" 2>&1; then
        grep -v "^WARNING: Location 'file:" "$LOG" | tail -n 40 >&2
        die "pip $* failed (full output: $LOG)"
    fi
}
if [[ ! -e "$PIP_STAMP" ]]; then
    say "upgrading pip in .venv"
    pip_q install --upgrade pip
    "$VENV/bin/python" -m pip --version > "$PIP_STAMP"
fi

# What the editable install depends on: pyproject.toml, the interpreter, and the set of top-level
# packages (setuptools maps the packages it found at install time).
want="$( {
    sha256sum pyproject.toml | cut -d' ' -f1
    "$VENV/bin/python" -c 'import sys; print(sys.version)'
    ls -d -- */__init__.py 2>/dev/null || true
} | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]]; then
    say "pip install -e '.[dev]' (pyproject.toml or packages changed since the last install)"
    rm -f "$STAMP"
    pip_q install -e '.[dev]'
    echo "$want" > "$STAMP"
fi
say "ok: .venv $("$VENV/bin/python" --version 2>&1), yujing installed editable"
install_cli_wrapper "$VENV"
