#!/usr/bin/env bash
# Set up a virtual environment in .venv (if missing), install spikeedge with its test extra,
# then run the linters and the test suite. This is the README's test command; .ci/run calls it.
#   bash tools/check.sh           lint + default tests (quick; slow suites deselected)
#   bash tools/check.sh --all     lint + every suite, slow ones included, with the training and
#                                 NIR extras (CPU PyTorch); what CI runs
# Extra arguments after --all or alone are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SPIKEEDGE_VENV:-.venv}
ALL=0
if [ "${1:-}" = "--all" ]; then ALL=1; shift; fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"
if [ "$ALL" = 1 ]; then
  # The training and NIR-export suites need PyTorch: the CPU build, pinned, installed first so
  # that the unpinned torch requirements of the extras and of snnTorch/nirtorch add nothing.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[test,train,nir-fixtures]"
fi
export PATH="$PWD/$VENV/bin:$PATH"

echo "== lint"
ruff check .
cython-lint cython_kernels/*.pyx
python -m spikeedge.tools.gendocs --check

echo "== backend"
spikeedge info --json | python -c 'import json,sys; d=json.load(sys.stdin); print("backend:", d["backend"]); sys.exit(d["backend"] != "compiled")'

echo "== tests"
MARK=()
if [ "$ALL" = 0 ]; then MARK=(-m "not slow"); fi
set +e
python -m pytest "${MARK[@]}" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
