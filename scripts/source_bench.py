#!/usr/bin/env python3
"""source_bench.py: records/s and CPU per record of one `kpipe run` with a
kafka source (examples/plugins/wat/upper.wasm as the transform) against
scripts/mineos, the smallest franz-go consume-transform-produce program
doing the same, under exactly_once and at_least_once, in interleaved rounds.

  scripts/source_bench.py --brokers 127.0.0.1:19092 --records 500000 --rounds 3

It writes --records keyed 100-byte records to a fresh input topic once; each
run reads all of them with a fresh group into a fresh output topic. Time is
from the start of the process until every record's offset is committed
(mineos exits then; kpipe is watched through its admin endpoint and then
interrupted); CPU is the process's user+system time (getrusage), including
its start and shutdown. With --procs 2 it also runs two kpipe processes in
one group (scaling); CPU is then the sum of both.

It prints one line per run and, per mode, the median ratio kpipe/mineos of
records/s and of CPU per record. records/s is given twice: over the whole
run, and "steady", from the first commit to the last (leaving out the start:
loading the plugins, connecting, joining the group). Every wait is bounded
(--timeout).
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time, urllib.request, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)

def metric_sum(port, name):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        return 0
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith(name + "{"))

def cpu(ru):
    return ru.ru_utime + ru.ru_stime

def run_mineos(a, bins, mode, tag):
    t0 = time.monotonic()
    p = subprocess.Popen([bins["mineos"], "--brokers", a.brokers, "--in", a.topic, "--out", "out-" + tag,
                          "--group", "g-" + tag, "--records", str(a.records), "--timeout", f"{a.timeout}s"]
                         + (["--eos"] if mode == "exactly_once" else []), stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"mineos failed: exit {p.returncode}")
    steady = float(out.split("steady:")[1].split("after the first commit:")[1].split()[0])
    return time.monotonic() - t0, cpu(ru), steady

def run_kpipe(a, bins, mode, tag, procs):
    d = tempfile.mkdtemp(prefix="kpipe-srcbench-")
    cfg = os.path.join(d, "bench.hcl")
    with open(cfg, "w") as f:
        f.write(f'''kafka {{ brokers = ["{a.brokers}"] }}
pipeline "bench" {{
  topic = "out-{tag}"
  source "kafka" {{
    topics   = ["{a.topic}"]
    group    = "g-{tag}"
    delivery = "{mode}"
  }}
  interceptor "upper" {{ module = "{ROOT}/examples/plugins/wat/upper.wasm" }}
}}
''')
    t0 = time.monotonic()
    ports, ps = [], []
    for i in range(procs):
        port = 20000 + (os.getpid() + i * 7 + int(t0 * 1000)) % 20000
        ports.append(port)
        ps.append(subprocess.Popen([bins["kpipe"], "run", "--config", cfg, "--admin", f"127.0.0.1:{port}"],
                                   stderr=open(os.path.join(d, f"stderr{i}"), "w")))
    deadline = t0 + a.timeout
    first = None
    while True:
        c = sum(metric_sum(p, "kpipe_source_records_committed_total") for p in ports)
        now = time.monotonic()
        if c > 0 and first is None:
            first = (now, c)
        if c >= a.records:
            break
        if now > deadline or any(p.poll() is not None for p in ps):
            for p in ps:
                p.kill()
            sys.exit(f"kpipe did not commit {a.records} records within {a.timeout}s (see {d})")
        time.sleep(0.01)
    wall = now - t0
    steady = (a.records - first[1]) / max(now - first[0], 1e-3)
    total = 0.0
    for p in ps:
        p.send_signal(signal.SIGINT)
    for p in ps:
        _, _, ru = os.wait4(p.pid, 0)
        total += cpu(ru)
    return wall, total, steady

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", default="127.0.0.1:19092")
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--procs", type=int, default=1, help="also run this many kpipe processes in one group (scaling)")
    ap.add_argument("--modes", default="exactly_once,at_least_once")
    ap.add_argument("--timeout", type=int, default=300)
    a = ap.parse_args()
    bindir = tempfile.mkdtemp(prefix="kpipe-srcbench-bin-")
    bins = {"kpipe": os.path.join(bindir, "kpipe"), "mineos": os.path.join(bindir, "mineos")}
    sh("go", "build", "-o", bins["kpipe"], "./cmd/kpipe", cwd=ROOT)
    sh("go", "build", "-o", bins["mineos"], "./scripts/mineos", cwd=ROOT)
    a.topic = "srcbench-in-" + uuid.uuid4().hex[:8]
    inp = os.path.join(bindir, "in.jsonl")
    with open(inp, "w") as f:
        for i in range(a.records):
            f.write(json.dumps({"key": f"key-{i % 1000}", "value": f"record {i:08d} " + "x" * 83}) + "\n")
    sh(bins["mineos"], "--brokers", a.brokers, "--in", a.topic, "--create", str(a.partitions))
    sh(bins["kpipe"], "run", "--brokers", a.brokers, "--topic", a.topic, "--input", inp, stderr=subprocess.DEVNULL)
    load = os.getloadavg()
    print(f"input: {a.records} records in {a.topic}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} cores")
    res = {}
    for r in range(a.rounds):
        for mode in a.modes.split(","):
            runs = [("mineos", 1), ("kpipe", 1)]
            if a.procs > 1:
                runs.append(("kpipe", a.procs))
            if r % 2:
                runs.reverse()
            for who, procs in runs:
                tag = uuid.uuid4().hex[:8]
                if who == "mineos":
                    wall, c, steady = run_mineos(a, bins, mode, tag)
                else:
                    wall, c, steady = run_kpipe(a, bins, mode, tag, procs)
                key = (mode, who, procs)
                res.setdefault(key, []).append((a.records / wall, c / a.records * 1e9, steady))
                print(f"round {r + 1} {mode:14s} {who:7s} x{procs}: {a.records / wall:9.0f} records/s, steady {steady:9.0f} records/s, {c / a.records * 1e9:6.0f} cpu-ns/record", flush=True)
    for mode in a.modes.split(","):
        base = res[(mode, "mineos", 1)]
        for key in sorted(k for k in res if k[0] == mode and k[1] == "kpipe"):
            rs = [k[0] / b[0] for k, b in zip(res[key], base)]
            ss = [k[2] / b[2] for k, b in zip(res[key], base)]
            cs = [k[1] / b[1] for k, b in zip(res[key], base)]
            print(f"{mode}: kpipe x{key[2]} / mineos: records/s median {statistics.median(rs):.2f} (rounds {', '.join(f'{x:.2f}' for x in rs)}), "
                  f"steady median {statistics.median(ss):.2f} (rounds {', '.join(f'{x:.2f}' for x in ss)}), cpu/record median {statistics.median(cs):.2f}")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")

if __name__ == "__main__":
    main()
