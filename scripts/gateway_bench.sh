#!/usr/bin/env bash
# Measures what a kpipe gateway costs a producer, on one upstream, in
# interleaved rounds (direct, gateway without plugins, gateway with the WAT
# example plugins, one after the other in each round), and prints ratios:
#
#   throughput  records/s through each gateway / records/s direct, for
#               franz-go (scripts/gatewaybench) and kcat: median of the rounds
#   latency     p50 and p99 from Produce to acknowledgement at a fixed rate
#               (franz-go, linger 0), direct and through the plain gateway,
#               and the difference: median of the rounds
#   memory      peak RSS (VmHWM) of each gateway process after all rounds
#
# Usage: scripts/gateway_bench.sh [ROUNDS]   (default 3)
# Environment:
#   KPIPE_BENCH_BROKERS  upstream bootstrap HOST:PORT (default: a `kpipe broker`
#                        started for the run; scripts/kafka.sh start gives a
#                        real one at 127.0.0.1:19092)
#   N                    records per throughput run (default 200000)
#   SIZE                 value bytes (default 100)
#   RATE, DURATION       latency runs: records/s and seconds (default 5000, 5)
# Needs Go, python3 and kcat. Every client run is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
N=${N:-200000}
SIZE=${SIZE:-100}
RATE=${RATE:-5000}
DURATION=${DURATION:-5}
command -v kcat >/dev/null || { echo "gateway_bench: kcat is needed" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/kpipe" ./cmd/kpipe
go build -o "$tmp/bench" ./scripts/gatewaybench

# first_line FILE: waits up to 30s for the first line of FILE.
first_line() {
	for _ in $(seq 300); do
		if [[ -s $1 ]]; then head -n1 "$1"; return; fi
		sleep 0.1
	done
	echo "gateway_bench: nothing in $1 after 30s" >&2
	cat "${1%.addr}.err" >&2 || true
	exit 1
}

upstream=${KPIPE_BENCH_BROKERS:-}
if [[ -z $upstream ]]; then
	"$tmp/kpipe" broker --listen 127.0.0.1:0 >"$tmp/broker.addr" 2>"$tmp/broker.err" &
	pids+=($!)
	upstream=$(first_line "$tmp/broker.addr")
fi

root=$(pwd)
cat >"$tmp/wasm.hcl" <<HCL
pipeline "bench" {
  interceptor "noop" { module = "$root/examples/plugins/wat/noop.wasm" }
  partitioner { module = "$root/examples/plugins/wat/keyhash.wasm" }
}
HCL

declare -A addr pid
for g in plain wasm; do
	args=(gateway --listen 127.0.0.1:0 --brokers "$upstream")
	[[ $g == wasm ]] && args+=(--config "$tmp/wasm.hcl")
	"$tmp/kpipe" "${args[@]}" >"$tmp/$g.addr" 2>"$tmp/$g.err" &
	pids+=($!)
	pid[$g]=$!
	addr[$g]=$(first_line "$tmp/$g.addr")
done
addr[direct]=$upstream

python3 -c "import sys; n, s = int(sys.argv[1]), int(sys.argv[2]); sys.stdout.write(''.join(f'{i}:{\"v\" * s}\n' for i in range(n)))" "$N" "$SIZE" >"$tmp/kcat.in"

echo "upstream $upstream; gateways: plain ${addr[plain]}, wasm ${addr[wasm]}; $rounds rounds, N=$N, SIZE=$SIZE" >&2
results=$tmp/results.jsonl
for r in $(seq "$rounds"); do
	for t in direct plain wasm; do
		topic="bench-$t-$r-$$"
		out=$(timeout 300 "$tmp/bench" -brokers "${addr[$t]}" -topic "$topic-go" -n "$N" -size "$SIZE")
		echo "{\"round\":$r,\"target\":\"$t\",\"client\":\"franz-go\",\"m\":$out}" >>"$results"
		# kcat needs the topic to exist before it times itself.
		timeout 60 "$tmp/bench" -brokers "${addr[$t]}" -topic "$topic-kcat" -n 1 >/dev/null
		t0=$(date +%s.%N)
		timeout 300 kcat -P -b "${addr[$t]}" -t "$topic-kcat" -K: -l "$tmp/kcat.in"
		t1=$(date +%s.%N)
		echo "{\"round\":$r,\"target\":\"$t\",\"client\":\"kcat\",\"m\":{\"records_per_s\":$(python3 -c "print($N/($t1-$t0))")}}" >>"$results"
	done
	for t in direct plain; do
		out=$(timeout 120 "$tmp/bench" -mode latency -brokers "${addr[$t]}" -topic "bench-lat-$t-$r-$$" -rate "$RATE" -duration "${DURATION}s" -size "$SIZE")
		echo "{\"round\":$r,\"target\":\"$t\",\"client\":\"latency\",\"m\":$out}" >>"$results"
	done
	echo "round $r done" >&2
done

rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
python3 - "$results" "$(rss "${pid[plain]}")" "$(rss "${pid[wasm]}")" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def get(client, target, key):
    return {r["round"]: r["m"][key] for r in rows if r["client"] == client and r["target"] == target}
print("throughput (records/s; ratio = gateway / direct, median of rounds)")
for client in ("franz-go", "kcat"):
    d = get(client, "direct", "records_per_s")
    for t in ("plain", "wasm"):
        g = get(client, t, "records_per_s")
        ratios = [g[r] / d[r] for r in d]
        print(f"  {client:8} {t:5}  direct {statistics.median(d.values()):>10.0f}  gateway {statistics.median(g.values()):>10.0f}  ratio {statistics.median(ratios):.2f}  (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
print("latency at a fixed rate (ms; added = gateway - direct, median of rounds)")
for q in ("p50_ms", "p99_ms"):
    d, g = get("latency", "direct", q), get("latency", "plain", q)
    added = [g[r] - d[r] for r in d]
    print(f"  {q[:3]}  direct {statistics.median(d.values()):.3f}  gateway {statistics.median(g.values()):.3f}  added {statistics.median(added):+.3f}")
print(f"memory: peak RSS plain gateway {int(sys.argv[2])/1024:.0f} MiB, wasm gateway {int(sys.argv[3])/1024:.0f} MiB")
PY
