#!/usr/bin/env bash
# callgrind_per_op.sh PKG BENCH [N1 N2]: instructions per iteration of one Go
# benchmark, counted by valgrind's callgrind, which the machine's load does
# not disturb. It runs the benchmark for N1 and for N2 iterations (default
# 100000 and 500000) and prints (total2 - total1) / (N2 - N1), which leaves
# out the start-up; everything the process runs is counted, host, guest code
# wazero compiled, and the garbage collector. GOMAXPROCS=1 keeps idle
# processors from spinning and asyncpreemptoff keeps callgrind from
# signals it cannot follow. Each run is bounded by 600 s. The collector's
# work depends on the wall clock, so that two runs of the same code can
# differ by tens of millions of instructions; GOGC=off in the environment
# leaves it out and makes the count repeatable (to a few instructions per
# iteration), for comparing two versions of a path that allocates.
#
#   scripts/callgrind_per_op.sh ./wasmhost/internal/abi BenchmarkApplyEdits
#   scripts/callgrind_per_op.sh ./wasmhost 'BenchmarkSDKExamples/^c$/stamp/on_send/^1$'
set -euo pipefail
pkg=$1 bench=$2 n1=${3:-100000} n2=${4:-500000}
command -v valgrind >/dev/null || { echo "callgrind_per_op.sh: valgrind is not installed" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/bench.test" "$pkg"
cd "$pkg" # tests find their files relative to the package
total() {
	GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 timeout 600 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$tmp/bench.test" -test.run '^$' -test.bench "$bench" -test.benchtime "${1}x" 2>&1 |
		sed -n 's/.*Collected : //p'
}
t1=$(total "$n1")
t2=$(total "$n2")
[ -n "$t1" ] && [ -n "$t2" ] || { echo "callgrind_per_op.sh: valgrind reported no total" >&2; exit 1; }
echo "$bench: $(( (t2 - t1) / (n2 - n1) )) instructions per iteration"
