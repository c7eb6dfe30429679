#!/usr/bin/env bash
# Run the test suite under every JavaScript runtime that is installed (Node, Deno, Bun) and
# print one summary line per runtime, then `N passed, N failed` over all of them.
#
# Usage: bash test/runtimes.sh [filter...]      (filters as in test/run.ts)
#
# Deno and Bun are not dependencies (see ../shared/TOOLCHAIN.md): install them after `npm ci`
# with `npm install --no-save deno@2.9.6 bun@1.4.5`, or put `deno` / `bun` on PATH.
# A runtime that is missing is reported as skipped, never as a failure.
# Full logs: $EDGEKV_RUNTIME_LOGS (default: a temporary directory, printed at the end).
set -u
cd "$(dirname "$0")/.."

logs="${EDGEKV_RUNTIME_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
# Deno warns when XDG_RUNTIME_DIR is unset (harmless); give it a private one.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

# Prefer the project's own copy (node_modules/.bin), then PATH.
find_bin() {
  if [ -x "node_modules/.bin/$1" ]; then echo "node_modules/.bin/$1"
  elif command -v "$1" >/dev/null 2>&1; then command -v "$1"
  fi
}

total_passed=0
total_failed=0
total_skipped=0
status=0
summary=()

run_one() { # name, command...
  local name="$1"; shift
  local log="$logs/$name.log"
  local start end line rc
  start=$(date +%s)
  "$@" >"$log" 2>&1
  rc=$?
  end=$(date +%s)
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  if [ -z "$line" ]; then
    summary+=("$name: no summary line (exit $rc): see $log")
    status=1
    return
  fi
  local p f
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  local k
  k=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
  total_skipped=$((total_skipped + ${k:-0}))
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then status=1; fi
  summary+=("$name: $line ($((end - start)) s, exit $rc)")
}

node_bin=$(find_bin node)
if [ -n "$node_bin" ]; then
  run_one "node $("$node_bin" --version)" "$node_bin" --import tsx test/run.ts "$@"
else
  summary+=("node: not installed (skipped)")
fi

deno_bin=$(find_bin deno)
if [ -n "$deno_bin" ]; then
  run_one "deno $("$deno_bin" --version | head -1 | awk '{print $2}')" "$deno_bin" run -A test/run.ts "$@"
else
  summary+=("deno: not installed (skipped; npm install --no-save deno@2.9.6)")
fi

bun_bin=$(find_bin bun)
if [ -n "$bun_bin" ]; then
  run_one "bun $("$bun_bin" --version)" "$bun_bin" test/run.ts "$@"
else
  summary+=("bun: not installed (skipped; npm install --no-save bun@1.4.5)")
fi

for s in "${summary[@]}"; do echo "$s"; done
echo "logs: $logs"
if [ "$total_skipped" -gt 0 ]; then echo "$total_passed passed, $total_failed failed, $total_skipped skipped"; else echo "$total_passed passed, $total_failed failed"; fi
exit $status
