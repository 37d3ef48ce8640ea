#!/usr/bin/env bash
# The project's checks, as CI runs them: export/clean leave no diff, README is current, ruff, notebook tests, pytest.
# Usage: tools/run_tests.sh   (uses .venv/bin when it exists). NBDEV_FLAGS selects extra notebook flags, e.g. "browser fiftyone".
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"
export FIFTYONE_DO_NOT_TRACK=true MPLBACKEND=Agg PYTHONHASHSEED=0

echo "== nbdev_export and nbdev_clean leave no diff"
before=$(git status --porcelain -- maskgen nbs 2>/dev/null || true)
nbdev_export
nbdev_clean
after=$(git status --porcelain -- maskgen nbs 2>/dev/null || true)
if [ "$before" != "$after" ]; then
  echo "nbdev_export/nbdev_clean changed files: the package and notebooks are out of sync or unclean"; git status --porcelain -- maskgen nbs; git diff --stat -- maskgen nbs; exit 1
fi

echo "== README.md matches nbs/index.ipynb"
python tools/make_readme.py --check

echo "== ruff"
ruff check maskgen tests bench

echo "== notebook tests"
nbdev_test --n_workers 2 --timing ${NBDEV_FLAGS:+--flags "$NBDEV_FLAGS"}

echo "== pytest"
python -m pytest -q tests ${PYTEST_ARGS:-}
