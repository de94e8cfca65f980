#!/usr/bin/env bash
# Benchmarks statsctl's load generator against oha and wrk, in one run, on this machine, against the same
# trivial HTTP target on 127.0.0.1 (loadtest/examples/bench_target.rs, one thread). Prints a Markdown table.
#
#   loadtest/bench/run.sh            # ~3 minutes; installs wrk (apt) and oha (cargo install) when missing
#   DURATION=20s loadtest/bench/run.sh
#
# statsctl's side runs loadtest/examples/bench.rs: the same engine (`statsctl_loadtest::run`) `statsctl
# loadtest` drives, built in release, without the AWS SDK around it.
#   1. maximum throughput, every tool for the same DURATION and at the same thread count, in ROUNDS interleaved
#      rounds (min / median / max; the ratio is of medians): wrk -t1 -c64 against statsctl with 1 worker thread
#      (64 connections), wrk -t2 -c64 and oha -c64 (its runtime has one thread per core: 2 here) against
#      statsctl with 2 (32 connections each). wrk and oha are closed loops (as fast as answers come); statsctl is
#      an open model asked for far more than the target serves, and once more for 1.5x what wrk -t2 got in the
#      same round: a generator that slows itself with its own backlog shows there;
#   2. a fixed requested rate (5k and 20k req/s): achieved rate, its error, and p50/p99 against oha's
#      --latency-correction numbers (wrk has no rate control: wrk2 does, it is not packaged);
#   3. peak memory (VmHWM) with 100,000 viewers polling every 15 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18999}
URL="http://127.0.0.1:$PORT/"
out=${OUT:-target/bench}
mkdir -p "$out"

if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -qq wrk >/dev/null
fi
OHA=$(command -v oha || ls target/tools/bin/oha 2>/dev/null || true)
if [ -z "$OHA" ]; then
  [ -x target/tools/bin/oha ] || cargo install --locked oha --root target/tools
  OHA=target/tools/bin/oha
fi
cargo build --quiet --release -p statsctl-loadtest --examples
BENCH=target/release/examples/bench

target/release/examples/bench_target "$PORT" 2>/dev/null &
target_pid=$!
trap 'kill $target_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

json() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }
secs=${DURATION%s}

# 1. Maximum throughput: ROUNDS rounds, the tools in turn within each, so a busy machine hurts them alike.
: > "$out/max.tsv"
for round in $(seq "$ROUNDS"); do
  wrk -t1 -c64 -d"$DURATION" "$URL" > "$out/wrk1-max.txt"
  printf 'wrk1\t%s\n' "$(awk '/Requests\/sec/ {print $2}' "$out/wrk1-max.txt")" >> "$out/max.tsv"
  "$BENCH" --target "$URL" --viewers 200000 --poll 1s --duration "$DURATION" --pool 64 --workers 1 > "$out/st1-max.json"
  printf 'st1\t%s\n' "$(json "$out/st1-max.json" "round(d['ok_rps'])")" >> "$out/max.tsv"
  wrk -t2 -c64 -d"$DURATION" "$URL" > "$out/wrk2-max.txt"
  wrk2_rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk2-max.txt")
  printf 'wrk2\t%s\n' "$wrk2_rps" >> "$out/max.tsv"
  "$BENCH" --target "$URL" --viewers 200000 --poll 1s --duration "$DURATION" --pool 32 --workers 2 > "$out/st2-max.json"
  printf 'st2\t%s\n' "$(json "$out/st2-max.json" "round(d['ok_rps'])")" >> "$out/max.tsv"
  "$OHA" -z "$DURATION" -c 64 --no-tui --output-format json "$URL" > "$out/oha-max.json"
  printf 'oha\t%s\n' "$(json "$out/oha-max.json" "round(d['summary']['requestsPerSec'])")" >> "$out/max.tsv"
  over=$(python3 -c "print(round(float('$wrk2_rps') * 1.5))")
  "$BENCH" --target "$URL" --viewers "$over" --poll 1s --duration "$DURATION" --pool 32 --workers 2 > "$out/st2-over.json"
  printf 'st2over\t%s\n' "$(json "$out/st2-over.json" "round(d['ok_rps'])")" >> "$out/max.tsv"
done
max_rows=$(python3 - "$out/max.tsv" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, rps = line.split()
    runs.setdefault(tool, []).append(float(rps))
def fig(tool):
    v = sorted(runs[tool])
    return "%s / **%s** / %s" % tuple(format(round(x), ",") for x in (v[0], statistics.median(v), v[-1]))
def ratio(a, b):
    return "%.2f" % (statistics.median(runs[a]) / statistics.median(runs[b]))
rows = [
    ("wrk -t1 -c64", "wrk1", ""),
    ("statsctl, 1 worker thread, 64 connections, asked for 200k/s", "st1", "%s× wrk -t1" % ratio("st1", "wrk1")),
    ("wrk -t2 -c64", "wrk2", ""),
    ("oha -c64 (2 runtime threads)", "oha", ""),
    ("statsctl, 2 worker threads, 32 connections each, asked for 200k/s", "st2",
     "%s× wrk -t2, %s× oha" % (ratio("st2", "wrk2"), ratio("st2", "oha"))),
    ("statsctl, 2 worker threads, asked for 1.5× what wrk -t2 got", "st2over",
     "%s× wrk -t2, %s× oha" % (ratio("st2over", "wrk2"), ratio("st2over", "oha"))),
]
for name, tool, r in rows:
    print("| %s | %s | %s |" % (name, fig(tool), r))
PY
)

# 2. Fixed rates.
rate_rows=""
for rate in 5000 20000; do
  "$OHA" -z "$DURATION" -c 64 -q "$rate" --latency-correction --no-tui --output-format json "$URL" > "$out/oha-$rate.json"
  "$BENCH" --target "$URL" --viewers "$rate" --poll 1s --duration "$DURATION" --pool 32 > "$out/statsctl-$rate.json"
  o_rps=$(json "$out/oha-$rate.json" "round(d['summary']['requestsPerSec'])")
  o_p50=$(json "$out/oha-$rate.json" "'%.2f' % (d['latencyPercentiles']['p50']*1000)")
  o_p99=$(json "$out/oha-$rate.json" "'%.2f' % (d['latencyPercentiles']['p99']*1000)")
  s_rps=$(json "$out/statsctl-$rate.json" "round(d['achieved_rps'])")
  s_p50=$(json "$out/statsctl-$rate.json" "'%.2f' % d['p50_ms']")
  s_p99=$(json "$out/statsctl-$rate.json" "'%.2f' % d['p99_ms']")
  s_late=$(json "$out/statsctl-$rate.json" "d['late']")
  err() { python3 -c "print('%.2f%%' % (abs($1-$rate)/$rate*100))"; }
  rate_rows+="| $rate req/s | statsctl | $s_rps | $(err "$s_rps") | $s_p50 | $s_p99 | late: $s_late |"$'\n'
  rate_rows+="| $rate req/s | oha -q --latency-correction | $o_rps | $(err "$o_rps") | $o_p50 | $o_p99 | |"$'\n'
done

# 3. Memory with 100k viewers every 15 s (6,667 req/s), for 30 s.
"$BENCH" --target "$URL" --viewers 100000 --poll 15s --duration 30s --pool 32 > "$out/statsctl-100k.json"
mem=$(json "$out/statsctl-100k.json" "'%.0f' % d['peak_rss_mb']")
mem_rps=$(json "$out/statsctl-100k.json" "round(d['achieved_rps'])")
/usr/bin/time -f '%M' -o "$out/oha-mem.txt" "$OHA" -z 30s -c 64 -q 6667 --latency-correction --no-tui --output-format quiet "$URL" || true
oha_mem=$(awk '{printf "%.0f", $1/1024}' "$out/oha-mem.txt" 2>/dev/null || echo "?")

cat <<TABLE
Machine: $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%F); target: bench_target (hyper, 1
thread) on 127.0.0.1; $DURATION per run, every tool.
$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $("$OHA" --version), statsctl-loadtest (release).

| 1. maximum throughput, $ROUNDS rounds | req/s: min / **median** / max | ratio of medians |
|---|---|---|
${max_rows}

| 2. fixed rate | tool | achieved req/s | rate error | p50 ms | p99 ms | |
|---|---|---|---|---|---|---|
${rate_rows}
| 3. 100,000 viewers polling every 15 s, 30 s | peak RSS |
|---|---|
| statsctl ($mem_rps req/s achieved) | $mem MB |
| oha -q 6667 (for scale: it holds no per-viewer state) | $oha_mem MB |
TABLE
