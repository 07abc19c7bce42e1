#!/usr/bin/env bash
# Create or reuse .venv and install what is missing. Safe to run any number of times.
# torch is installed as torch==2.13.0 when absent: on our machines that is a local CPU wheel,
# while any looser spec pulls several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), f"mirformer needs Python >= 3.10, found {sys.version}"'
  "$PYTHON" -m venv .venv
fi
# --no-compile: pip byte-compiles file by file on one core; compileall at the end uses them all.
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q --no-compile)
installed=0

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0"
  "${PIP[@]}" "torch==2.13.0"
  installed=1
fi

# Reinstall the package only when its declared dependencies changed.
stamp=.venv/.mirformer-pyproject.sha1
want=$(.venv/bin/python -c "import hashlib; print(hashlib.sha1(open('pyproject.toml', 'rb').read()).hexdigest())")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import mirformer" 2>/dev/null; then
  echo "[setup] installing mirformer and its dependencies into .venv"
  "${PIP[@]}" -e ".[test]"
  installed=1
  echo "$want" > "$stamp"
fi

# Without .pyc files (PYTHONDONTWRITEBYTECODE=1 stops Python writing them, as on our CI) every new
# interpreter recompiles torch and Lightning: seconds per CLI call, test subprocess and loader
# worker. A few packages ship files that are not Python 3 (templates, test data): skip quietly.
if [ "$installed" = 1 ]; then
  echo "[setup] byte-compiling .venv"
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages >/dev/null || true
fi
