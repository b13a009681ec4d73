#!/usr/bin/env bash
# One step of `make results`: run a command, print its wall time and log it.
#   scripts/timed_step.sh NAME CMD [ARGS...]   run CMD, append "NAME<TAB>seconds<TAB>exit" to $RESULTS_TIMES
#   scripts/timed_step.sh --summary OUT.md      print every step's time, their sum and the wall clock; write them to OUT.md with
#                                                the commit, the machine (cores, load) and the date
set -uo pipefail
log=${RESULTS_TIMES:-benchmarks/results/tmp/make_results_times.tsv}
mkdir -p "$(dirname "$log")"
if [ "$1" = "--summary" ]; then
  out=$2
  total=$(awk -F'\t' '{s += $2} END {print s + 0}' "$log")
  started=${log%.tsv}.start  # written by `make results` when it starts; steps of two lanes overlap in time
  wall=""
  [ -f "$started" ] && wall=$(( $(date +%s) - $(cat "$started") ))
  {
    echo "# make results: wall time per step"
    echo
    echo "Command: \`make results\`; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)');"
    echo "machine: $(nproc) cores, $(uname -m), load average at the end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null); $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "| step | wall_s | exit |"
    echo "|---|---|---|"
    awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$log"
    echo "| sum of steps | $total | |"
    [ -n "$wall" ] && echo "| wall clock, start to end (phase 2 runs two lanes side by side) | $wall | |"
  } > "$out"
  cat "$out"
  echo "make results: sum of steps $total s; wall clock ${wall:-?} s ($(awk -v t="${wall:-$total}" 'BEGIN {printf "%.1f", t / 60}') min)"
  awk -F'\t' '$3 != 0 {bad = 1} END {exit bad}' "$log"
  exit $?
fi
name=$1
shift
echo "== results step $name: $*"
start=$(date +%s)
"$@"
rc=$?
secs=$(( $(date +%s) - start ))
printf '%s\t%s\t%s\n' "$name" "$secs" "$rc" >> "$log"
echo "== results step $name: ${secs} s (exit $rc)"
exit 0
