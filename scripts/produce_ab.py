#!/usr/bin/env python3
"""Compare BenchmarkProduce variants across test binaries built from different
trees, in interleaved rounds: how pipeline/RATIONALE.md measured each change
of the per-record path (recycled against allocated envelopes, padding, the
envelope handle).

Build one test binary per tree (go test -c -o A.test ./pipeline/), then give
VARIANT:BINARY pairs; each round runs every pair once, each in its own
process, in an order that rotates from round to round. The script prints the
median records/s and CPU time per record of each pair, and the median of the
per-round ratios of each pair to the first.

usage: scripts/produce_ab.py ROUNDS RECORDS VARIANT:BINARY VARIANT:BINARY ...
example: scripts/produce_ab.py 10 300000 builtin:/tmp/old.test builtin:/tmp/new.test

A VARIANT is one of BenchmarkProduce, or BENCHMARK/VARIANT for another benchmark of
the package that reports the same figures: ProduceMemory/envelope runs
BenchmarkProduceMemory/envelope.
"""
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE = re.compile(r"Benchmark(\S+?)-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) cpu-ns/record\s+([\d.]+) records/s")


def run(variant, binary, records):
    """Runs one variant of one binary; returns (records/s, cpu-ns/record)."""
    bench, sub = variant.split("/", 1) if "/" in variant else ("Produce", variant)
    variant = f"{bench}/{sub}"
    out = subprocess.run(
        [binary, "-test.run", "^$", "-test.bench", f"^Benchmark{bench}$/^{sub}$",
         "-test.benchtime", f"{records}x", "-test.benchmem"],
        cwd=os.path.join(ROOT, "pipeline"), capture_output=True, text=True, check=True,
        timeout=600 + records / 1000).stdout
    for m in map(LINE.match, out.splitlines()):
        if m and m.group(1) == variant:
            return float(m.group(3)), float(m.group(2))
    sys.exit(f"no Benchmark{variant} result from {binary} in:\n" + out)


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    rounds, records, pairs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    got = {p: [] for p in pairs}
    for i in range(rounds):
        order = pairs[i % len(pairs):] + pairs[:i % len(pairs)]
        for p in order:
            variant, binary = p.split(":", 1)
            got[p].append(run(variant, binary, records))
        print(f"round {i + 1}: " + ", ".join(f"{p} {got[p][-1][1]:.0f}cpu-ns" for p in order), flush=True)
    print()
    for p in pairs:
        print(f"{p}: records/s {statistics.median(r[0] for r in got[p]) / 1e6:.3f}M, "
              f"cpu-ns/record {statistics.median(r[1] for r in got[p]):.0f}")
    base = pairs[0]
    for p in pairs[1:]:
        cpu = statistics.median(a[1] / b[1] for a, b in zip(got[p], got[base]))
        rps = statistics.median(a[0] / b[0] for a, b in zip(got[p], got[base]))
        print(f"{p} / {base}: cpu-ns/record {cpu:.3f}, records/s {rps:.3f} (medians of per-round ratios)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
