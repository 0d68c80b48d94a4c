#!/usr/bin/env bash
# Measures what a kpipe gateway costs a producer, on one upstream, in
# interleaved rounds (direct, gateway without plugins — which forwards the
# clients' batches as they are —, gateway with the WAT example plugins, one
# after the other in each round), and prints ratios:
#
#   throughput  records/s through each gateway / records/s direct, for
#               franz-go (scripts/gatewaybench) and kcat: median of the rounds
#   cpu         CPU time (user + system) per record of the client, of the
#               gateway and, when its pid is known, of the upstream broker,
#               over the same runs: median of the rounds. On a shared machine
#               this is steadier than records/s, which depends on the share
#               of the cores each process gets
#   latency     p50 and p99 from Produce to acknowledgement at a fixed rate
#               (franz-go, linger 0), direct and through each gateway, and
#               the difference: median of the rounds
#   memory      peak RSS (VmHWM) of each gateway process after all rounds
#   load        the 1-minute load average before and after the rounds
#
# Usage: scripts/gateway_bench.sh [ROUNDS]   (default 3)
# Environment:
#   KPIPE_BENCH_BROKERS  upstream bootstrap HOST:PORT (default: a `kpipe broker`
#                        started for the run; scripts/kafka.sh start gives a
#                        real one at 127.0.0.1:19092)
#   KPIPE_BENCH_BROKER_PID  pid of that upstream broker, for its CPU per record
#                        (`scripts/kafka.sh status` prints it); known without it
#                        for the `kpipe broker` the script starts
#   N                    records per throughput run (default 1000000)
#   SIZE                 value bytes (default 100)
#   RATE, DURATION       latency runs: records/s and seconds (default 5000, 5)
#   KPIPE_BENCH_COMPRESSION  a codec (snappy, lz4, ...): one more gateway, "comp",
#                        without plugins, whose kafka block sets that
#                        compression for its upstream producer
#   KPIPE_BENCH_BASE     a git revision: its `kpipe` is built too and run as two
#                        more gateways in every round, "base" (no plugins) and
#                        "basewasm" (the WAT plugins), so that a change is
#                        compared with it in the same run
# Needs Go, python3 and kcat. Every client run is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
N=${N:-1000000}
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
targets=(direct plain wasm)
if [[ -n ${KPIPE_BENCH_BASE:-} ]]; then
	git archive --prefix=base/ "$KPIPE_BENCH_BASE" | tar -x -C "$tmp"
	(cd "$tmp/base" && go build -o "$tmp/kpipe-base" ./cmd/kpipe)
	targets+=(base basewasm)
fi

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
broker_pid=${KPIPE_BENCH_BROKER_PID:-}
if [[ -z $upstream ]]; then
	"$tmp/kpipe" broker --listen 127.0.0.1:0 >"$tmp/broker.addr" 2>"$tmp/broker.err" &
	pids+=($!)
	broker_pid=$!
	upstream=$(first_line "$tmp/broker.addr")
fi

# cpu_of PID: the CPU seconds (user + system) PID has used so far; 0 without
# a PID.
tick=$(getconf CLK_TCK)
cpu_of() {
	if [[ -z ${1:-} ]]; then echo 0; return; fi
	awk -v t="$tick" '{print ($14 + $15) / t}' "/proc/$1/stat"
}

# timed.py OUT CMD...: runs CMD and writes its wall time and the CPU time
# of CMD and its children to OUT as JSON.
cat >"$tmp/timed.py" <<'PY'
import json, resource, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE)
el = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"seconds": el, "cpu_s": ru.ru_utime + ru.ru_stime, "out": p.stdout.decode()}, open(sys.argv[1], "w"))
sys.exit(p.returncode)
PY

# run_client ROUND TARGET CLIENT CMD...: runs one throughput run of CMD and
# appends its figures to the results: records/s, and the CPU seconds of the
# client, the gateway under test and the broker over the run.
run_client() {
	local r=$1 t=$2 client=$3
	shift 3
	local g0 b0 g1 b1 gpid=${pid[$t]:-}
	g0=$(cpu_of "$gpid")
	b0=$(cpu_of "$broker_pid")
	timeout 300 python3 "$tmp/timed.py" "$tmp/run.json" "$@"
	g1=$(cpu_of "$gpid")
	b1=$(cpu_of "$broker_pid")
	python3 - "$tmp/run.json" "$r" "$t" "$client" "$g0" "$g1" "$b0" "$b1" >>"$results" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
r, t, client = int(sys.argv[2]), sys.argv[3], sys.argv[4]
g0, g1, b0, b1 = map(float, sys.argv[5:9])
# gatewaybench prints the rate it measured; kcat prints nothing, and its
# rate is taken from the wall time of the run.
rate = json.loads(m["out"])["records_per_s"] if m["out"].strip() else None
print(json.dumps({"round": r, "target": t, "client": client, "m": {
    "records_per_s": rate, "seconds": m["seconds"],
    "client_cpu_s": m["cpu_s"], "gateway_cpu_s": g1 - g0, "broker_cpu_s": b1 - b0}}))
PY
}

root=$(pwd)
cat >"$tmp/wasm.hcl" <<HCL
pipeline "bench" {
  interceptor "noop" { module = "$root/examples/plugins/wat/noop.wasm" }
  partitioner { module = "$root/examples/plugins/wat/keyhash.wasm" }
}
HCL

if [[ -n ${KPIPE_BENCH_COMPRESSION:-} ]]; then
	targets+=(comp)
	cat >"$tmp/comp.hcl" <<HCL
kafka {
  compression = "$KPIPE_BENCH_COMPRESSION"
}
pipeline "bench" {}
HCL
fi

declare -A addr pid
results=$tmp/results.jsonl
load0=$(cut -d' ' -f1 /proc/loadavg)
for g in "${targets[@]:1}"; do
	args=(gateway --listen 127.0.0.1:0 --brokers "$upstream")
	[[ $g == wasm || $g == basewasm ]] && args+=(--config "$tmp/wasm.hcl")
	[[ $g == comp ]] && args+=(--config "$tmp/comp.hcl")
	bin=$tmp/kpipe
	[[ $g == base || $g == basewasm ]] && bin=$tmp/kpipe-base
	"$bin" "${args[@]}" >"$tmp/$g.addr" 2>"$tmp/$g.err" &
	pids+=($!)
	pid[$g]=$!
	addr[$g]=$(first_line "$tmp/$g.addr")
done
addr[direct]=$upstream

python3 -c "import sys; n, s = int(sys.argv[1]), int(sys.argv[2]); sys.stdout.write(''.join(f'{i}:{\"v\" * s}\n' for i in range(n)))" "$N" "$SIZE" >"$tmp/kcat.in"

echo "upstream $upstream; gateways: plain ${addr[plain]}, wasm ${addr[wasm]}${KPIPE_BENCH_BASE:+, base and basewasm ($KPIPE_BENCH_BASE) ${addr[base]:-} ${addr[basewasm]:-}}; $rounds rounds, N=$N, SIZE=$SIZE; load average $load0" >&2
for r in $(seq "$rounds"); do
	for t in "${targets[@]}"; do
		topic="bench-$t-$r-$$"
		run_client "$r" "$t" franz-go "$tmp/bench" -brokers "${addr[$t]}" -topic "$topic-go" -n "$N" -size "$SIZE"
		# kcat needs the topic to exist before it times itself.
		timeout 60 "$tmp/bench" -brokers "${addr[$t]}" -topic "$topic-kcat" -n 1 >/dev/null
		run_client "$r" "$t" kcat kcat -P -b "${addr[$t]}" -t "$topic-kcat" -K: -l "$tmp/kcat.in"
	done
	for t in "${targets[@]}"; do
		out=$(timeout 120 "$tmp/bench" -mode latency -brokers "${addr[$t]}" -topic "bench-lat-$t-$r-$$" -rate "$RATE" -duration "${DURATION}s" -size "$SIZE")
		echo "{\"round\":$r,\"target\":\"$t\",\"client\":\"latency\",\"m\":$out}" >>"$results"
	done
	echo "round $r done" >&2
done

rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
load1=$(cut -d' ' -f1 /proc/loadavg)
peaks=""
for g in "${targets[@]:1}"; do peaks+="$g=$(rss "${pid[$g]}") "; done
python3 - "$results" "$peaks" "$N" "$load0" "$load1" "$(nproc)" "$broker_pid" "${targets[*]}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[3])
targets = sys.argv[8].split()
def get(client, target, key):
    return {r["round"]: r["m"][key] for r in rows if r["client"] == client and r["target"] == target}
for r in rows:
    if r["client"] != "latency" and r["m"]["records_per_s"] is None:
        r["m"]["records_per_s"] = n / r["m"]["seconds"]  # kcat: wall time of the whole run
print("throughput (records/s; ratio = gateway / direct, median of rounds)")
for client in ("franz-go", "kcat"):
    d = get(client, "direct", "records_per_s")
    for t in targets[1:]:
        g = get(client, t, "records_per_s")
        ratios = [g[r] / d[r] for r in d]
        print(f"  {client:8} {t:5}  direct {statistics.median(d.values()):>10.0f}  gateway {statistics.median(g.values()):>10.0f}  ratio {statistics.median(ratios):.2f}  (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
print("CPU per record (µs, user + system; median of rounds)" + ("" if sys.argv[7] else "; broker: pid unknown"))
for client in ("franz-go", "kcat"):
    for t in targets:
        c, g, b = (get(client, t, k) for k in ("client_cpu_s", "gateway_cpu_s", "broker_cpu_s"))
        med = lambda m: statistics.median(m.values()) * 1e6 / n
        tot = {r: c[r] + g[r] + b[r] for r in c}
        print(f"  {client:8} {t:6}  client {med(c):6.2f}  gateway {med(g):6.2f}  broker {med(b):6.2f}  total {med(tot):6.2f}")
print("latency at a fixed rate (ms; added = gateway - direct, median of rounds)")
for q in ("p50_ms", "p99_ms"):
    d = get("latency", "direct", q)
    for t in targets[1:]:
        g = get("latency", t, q)
        added = [g[r] - d[r] for r in d]
        print(f"  {q[:3]} {t:5}  direct {statistics.median(d.values()):.3f}  gateway {statistics.median(g.values()):.3f}  added {statistics.median(added):+.3f}  (rounds: {', '.join(f'{x:+.3f}' for x in added)})")
peaks = dict(p.split("=") for p in sys.argv[2].split())
print("memory: peak RSS of each gateway: " + ", ".join(f"{g} {int(kb) / 1024:.0f} MiB" for g, kb in peaks.items()))
print(f"load average (1 min) {sys.argv[4]} before, {sys.argv[5]} after, on {sys.argv[6]} cores")
PY
