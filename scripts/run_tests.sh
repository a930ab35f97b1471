#!/usr/bin/env bash
# Set everything up, lint the Python code (ruff), build the C++ harness library and run its ctest cases, then run
# the whole pytest suite on CPU.
# Extra arguments go to pytest (to both shards, see below). A missing compiler or package fails here (setup error),
# it is never skipped.
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

# pytest in two processes at once (IPT_TEST_SHARDS=1: one): many tests wait on subprocesses (msrun clusters, entry
# points starting MindSpore), so two shards keep both cores busy. The first shard is the multi-process training and
# launcher files; the second is every other file (new files land there), its output shown when it is done. Each
# shard has its own temporary folder.
if [ "${IPT_TEST_SHARDS:-2}" = 1 ]; then exec .venv/bin/python -m pytest tests "$@"; fi
first=(tests/test_distributed.py tests/test_pretrain.py tests/test_mixed_precision.py tests/test_train_benchmark.py
       tests/test_benchmark.py tests/test_quickstart.py tests/test_memory_benchmark.py tests/test_runtime.py)
second=()
for f in tests/test_*.py; do
  [[ " ${first[*]} " == *" $f "* ]] || second+=("$f")
done
work=$(mktemp -d)
# (kill with no job left fails; under set -e that failure would become the script's exit status)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
start=$SECONDS
.venv/bin/python -m pytest "${second[@]}" --basetemp "$work/shard2" "$@" >"$work/shard2.log" 2>&1 &
second_pid=$!
echo "== pytest shard 1 of 2: ${first[*]}"
status1=0 status2=0
.venv/bin/python -m pytest "${first[@]}" --basetemp "$work/shard1" "$@" || status1=$?
wait $second_pid || status2=$?
echo "== pytest shard 2 of 2: the other $((${#second[@]})) test files"
cat "$work/shard2.log"
echo "run_tests: pytest shards done in $((SECONDS - start)) s; exit statuses $status1 and $status2"
[ "$status1" = 0 ] && [ "$status2" = 0 ]
