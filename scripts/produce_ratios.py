#!/usr/bin/env python3
"""Run pipeline's BenchmarkProduce several times and report the ratios that
kpipe's producer targets are stated in (issues #3 and #14).

Each round runs every variant once, each in its own process against its own
in-process broker, in an order that rotates from round to round (round 1:
bare, builtin, wasm, native; round 2: builtin, wasm, native, bare; ...), so
that no variant always runs first or last on a noisy machine. The script
prints, per variant, the median records/s and CPU time per record, and per
pair of variants the median (and range) of the per-round ratios of records/s
and of CPU per record, and in how many rounds builtin reached 0.95 of bare.

usage: scripts/produce_ratios.py [ROUNDS [RECORDS_PER_ROUND]] [--spin]
       (default 6, 2000000; --spin keeps one core busy with another process)
"""
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE = re.compile(r"BenchmarkProduce/(\S+?)-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) cpu-ns/record\s+([\d.]+) records/s")
PAIRS = [("builtin", "bare", 0.95), ("wasm", "bare", 0.85), ("wasm", "native", 0.90), ("native", "bare", None)]


VARIANTS = ["bare", "builtin", "wasm", "native"]


def run_variant(binary, name, records):
    """Runs one variant of BenchmarkProduce; returns (records/s, cpu-ns/record)."""
    out = subprocess.run(
        [binary, "-test.run", "^$", "-test.bench", f"^BenchmarkProduce$/^{name}$",
         "-test.benchtime", f"{records}x", "-test.benchmem"],
        cwd=os.path.join(ROOT, "pipeline"), capture_output=True, text=True, check=True,
        timeout=600 + records / 1000).stdout
    for m in map(LINE.match, out.splitlines()):
        if m and m.group(1) == name:
            return float(m.group(3)), float(m.group(2))
    sys.exit(f"no BenchmarkProduce/{name} result in:\n" + out)


def main():
    args = [a for a in sys.argv[1:] if a != "--spin"]
    spin = "--spin" in sys.argv[1:]
    rounds = int(args[0]) if len(args) > 0 else 6
    records = int(args[1]) if len(args) > 1 else 2000000
    binary = os.path.join(os.environ.get("TMPDIR", "/tmp"), "kpipe-produce-bench.test")
    subprocess.run(["go", "test", "-c", "-o", binary, "./pipeline/"], cwd=ROOT, check=True, timeout=900)
    spinner = None
    if spin:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        rounds_data = []  # one dict per round: variant -> (records/s, cpu-ns/record)
        for i in range(rounds):
            order = VARIANTS[i % len(VARIANTS):] + VARIANTS[:i % len(VARIANTS)]
            got = {name: run_variant(binary, name, records) for name in order}
            rounds_data.append(got)
            print(f"round {i + 1}: " + ", ".join(f"{k} {got[k][0] / 1e6:.2f}M/s {got[k][1]:.0f}cpu-ns"
                                                 for k in order), flush=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait(timeout=10)
    print(f"\n{'variant':16} {'records/s':>10} {'cpu-ns/record':>14}   (medians of {rounds} rounds"
          f"{', one core kept busy' if spin else ''})")
    for v in VARIANTS:
        print(f"{v:16} {statistics.median(r[v][0] for r in rounds_data) / 1e6:9.3f}M "
              f"{statistics.median(r[v][1] for r in rounds_data):14.0f}")
    print()
    for a, b, target in PAIRS:
        ratios = [r[a][0] / r[b][0] for r in rounds_data]
        cpu = [r[a][1] / r[b][1] for r in rounds_data]
        med = statistics.median(ratios)
        verdict = "" if target is None else f"  target >= {target:.2f}: {'met' if med >= target else 'NOT met'}"
        print(f"{a}/{b} records/s: median {med:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}){verdict}")
        print(f"{a}/{b} cpu-ns/record: median {statistics.median(cpu):.3f} (range {min(cpu):.3f}-{max(cpu):.3f})")
    ok = sum(1 for r in rounds_data if r["builtin"][0] / r["bare"][0] >= 0.95)
    cpu = statistics.median(r["builtin"][1] / r["bare"][1] for r in rounds_data)
    need = (rounds * 4 + 4) // 5
    print(f"\nbuiltin >= 0.95 x bare records/s in {ok} of {rounds} rounds "
          f"(target: at least {need}): {'met' if ok >= need else 'NOT met'}")
    print(f"builtin CPU per record {cpu:.3f} x bare's (target <= 1.10): {'met' if cpu <= 1.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
