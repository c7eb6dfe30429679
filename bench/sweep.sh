#!/usr/bin/env bash
# Run a sweep of `edgekv eval` jobs in parallel and merge them per task.
#
#   bash bench/sweep.sh JOBS_FILE OUT_DIR [PARALLEL] [MODEL_DIR]
#
# JOBS_FILE: one `edgekv eval` argument list per line (without --out / --model / --json;
# lines starting with # are ignored), longest jobs first. Each job writes
# OUT_DIR/jobs/<n>.json; then `edgekv eval-report` merges all jobs of each task into
# OUT_DIR/<task>.json (+ .md table, .svg plots). Runs with the built package
# (bin/edgekv.js, dist/, build/); NODE may point at a node binary.
set -u
jobs_file="$1"; out="$2"; par="${3:-$(nproc)}"; model="${4:-}"
node_bin="${NODE:-node}"
mkdir -p "$out/jobs" "$out/logs"
n=0
: > "$out/jobs.txt"
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  n=$((n + 1))
  printf '%s\t%s\n' "$n" "$line" >> "$out/jobs.txt"
done < "$jobs_file"
echo "sweep: $n jobs, $par in parallel"
export out node_bin model
run_job() {
  local id="$1"; shift
  local extra=()
  [ -n "$model" ] && extra=(--model "$model")
  # shellcheck disable=SC2086
  if "$node_bin" bin/edgekv.js eval $* "${extra[@]}" --no-progress --out "$out/jobs/$id.json" > "$out/logs/$id.log" 2>&1; then
    echo "job $id done: $*"
  else
    echo "job $id FAILED ($?): $* (log $out/logs/$id.log)"
  fi
}
export -f run_job
cut -f1,2 "$out/jobs.txt" | xargs -P "$par" -L 1 bash -c 'run_job "$@"' _
for task in ppl needle attn-error; do
  files=$(grep -l "\"task\": \"$task\"" "$out"/jobs/*.json 2>/dev/null | sort -V)
  [ -z "$files" ] && continue
  # shellcheck disable=SC2086
  "$node_bin" bin/edgekv.js eval-report --out "$out/$task.json" $files > /dev/null && echo "merged $task: $(echo $files | wc -w) job files"
done
