#!/usr/bin/env bash
# Creates .venv (unless VENV names another folder) and installs this package with its test extra.
# When no torch is installed yet, the CPU build is installed first: a bare "torch" requirement would
# otherwise pull a multi-gigabyte CUDA build. An installed torch is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    # The pinned CPU build first (a local wheel serves it on the project's machines), else the newest CPU
    # build from PyTorch's CPU index; never a bare "torch>=2.4" from PyPI, which is the CUDA build.
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" \
        || "$VENV/bin/python" -m pip install -q "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
fi
"$VENV/bin/python" -m pip install -q -e ".[test]"
