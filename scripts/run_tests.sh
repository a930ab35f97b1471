#!/usr/bin/env bash
# Set everything up, lint the Python code (ruff), build the C++ harness library and run its ctest cases, then run
# the whole pytest suite on CPU.
# Extra arguments go to pytest. A missing compiler or package fails here (setup error), it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/ruff check --quiet .; then
  echo "run_tests: error: the linter (ruff, ruff.toml) reports the lines above; '.venv/bin/ruff check .' lists them" >&2
  exit 1
fi
echo "ruff: all checks passed"
bash ascend310_infer/build.sh --lib-only
if ! (cd ascend310_infer/build && ctest --output-on-failure >ctest.log 2>&1); then
  cat ascend310_infer/build/ctest.log
  echo "run_tests: error: C++ unit tests (ctest) failed" >&2
  exit 1
fi
grep -E "tests passed|tests failed" ascend310_infer/build/ctest.log | sed 's/^/ctest: /'
exec .venv/bin/python -m pytest tests "$@"
