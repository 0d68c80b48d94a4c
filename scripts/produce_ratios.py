#!/usr/bin/env python3
"""Run pipeline's BenchmarkProduce several times and report the ratios that
issue #3's targets are stated in.

Every round runs all variants in one process, against one in-process broker,
so the ratios compare like with like even on a noisy machine; the script
prints, per variant, the median records/s and CPU time per record, and per
pair of variants the median (and range) of the per-round ratio of records/s.

usage: scripts/produce_ratios.py [ROUNDS [RECORDS_PER_ROUND]]   (default 6, 2000000)
"""
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE = re.compile(r"BenchmarkProduce/(\S+?)-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) cpu-ns/record\s+([\d.]+) records/s")
PAIRS = [("builtin", "bare", 0.95), ("wasm", "bare", 0.85), ("wasm", "native", 0.90), ("native", "bare", None)]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    records = int(sys.argv[2]) if len(sys.argv) > 2 else 2000000
    binary = os.path.join(os.environ.get("TMPDIR", "/tmp"), "kpipe-produce-bench.test")
    subprocess.run(["go", "test", "-c", "-o", binary, "./pipeline/"], cwd=ROOT, check=True)
    rounds_data = []  # one dict per round: variant -> (records/s, cpu-ns/record)
    for i in range(rounds):
        out = subprocess.run(
            [binary, "-test.run", "^$", "-test.bench", "BenchmarkProduce",
             "-test.benchtime", f"{records}x", "-test.benchmem"],
            cwd=os.path.join(ROOT, "pipeline"), capture_output=True, text=True, check=True).stdout
        got = {m.group(1): (float(m.group(3)), float(m.group(2)))
               for m in map(LINE.match, out.splitlines()) if m}
        if not got:
            sys.exit("no BenchmarkProduce results in:\n" + out)
        rounds_data.append(got)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[0] / 1e6:.2f}M/s" for k, v in got.items()), flush=True)
    variants = list(rounds_data[0])
    print(f"\n{'variant':16} {'records/s':>10} {'cpu-ns/record':>14}   (medians of {rounds} rounds)")
    for v in variants:
        print(f"{v:16} {statistics.median(r[v][0] for r in rounds_data) / 1e6:9.3f}M "
              f"{statistics.median(r[v][1] for r in rounds_data):14.0f}")
    print()
    for a, b, target in PAIRS:
        ratios = [r[a][0] / r[b][0] for r in rounds_data if a in r and b in r]
        if not ratios:
            continue
        med = statistics.median(ratios)
        verdict = "" if target is None else f"  target >= {target:.2f}: {'met' if med >= target else 'NOT met'}"
        print(f"{a}/{b} records/s: median {med:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}){verdict}")


if __name__ == "__main__":
    main()
