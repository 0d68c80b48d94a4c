#!/usr/bin/env python3
"""Compare `kpipe run` with other Kafka producers from the command line.

Builds kpipe, the Go example plugins and scripts/minprod (a minimal franz-go
producer), starts kpipe's embedded broker (or uses --brokers), writes the
input (N records with keys and 100-byte values), and runs every client on the
same input in interleaved rounds (the order rotates from round to round):

  minprod          scripts/minprod: raw values, kpipe's default Kafka settings
  kpipe-raw        kpipe run --format raw (values only, like minprod)
  kcat             kcat -P -K<TAB> (key and value), kpipe's default Kafka
                   settings where librdkafka's differ
  kpipe-json       kpipe run --format json, no plugins (key and value)
  kpipe-wat        kpipe-json through the WAT example plugins
                   (noop interceptor, keyhash partitioner)
  kpipe-none       JSON order records, the quickstart's Kafka settings, no plugins
  kpipe-quickstart the same records through examples/quickstart.hcl
                   (four Go-guest plugins)
  kafka-python     KafkaProducer(acks="all"), key and value (fewer records:
                   --python-records, default N/20)

For each client it prints the median over rounds of records/s, CPU time
(user+system) per record and peak RSS, and the medians of the per-round ratios
that kpipe's performance targets are stated in. Every child has a time limit.

usage: scripts/bench_cli.py [--records N] [--rounds R] [--brokers HOST:PORT]
                            [--only a,b,...]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPIC = "bench"

# (name, numerator, denominator, target or None, what) of the reported ratios.
RATIOS = [
    ("kpipe-json", "kcat", "rate", 0.8, "records/s, json vs kcat (target >= 0.8)"),
    ("kpipe-json", "kcat", "cpu", 1.5, "CPU/record, json vs kcat (target <= 1.5)"),
    ("kpipe-raw", "minprod", "rate", 0.95, "records/s, raw vs minimal franz-go (target >= 0.95)"),
    ("kpipe-raw", "minprod", "cpu", None, "CPU/record, raw vs minimal franz-go"),
    ("kpipe-raw", "kcat", "rate", None, "records/s, raw vs kcat"),
    ("kpipe-json", "kafka-python", "rate", 10, "records/s, json vs kafka-python (target >= 10)"),
    ("kpipe-wat", "kpipe-json", "rate", None, "records/s, WAT plugins vs none"),
    ("kpipe-quickstart", "kpipe-none", "rate", 0.6, "records/s, quickstart vs no plugins (target >= 0.6)"),
    ("kpipe-quickstart", "kpipe-none", "cpu", None, "CPU/record, quickstart vs no plugins"),
]


def sh(cmd, cwd=ROOT, env=None, timeout=900):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True, timeout=timeout)


def run_measured(cmd, stdin_path, timeout, env=None):
    """Runs cmd with stdin from stdin_path; returns (wall s, cpu s, peak RSS bytes).

    The peak RSS is the largest VmHWM read while the child runs (every 10ms):
    wait4's ru_maxrss would include this Python process, which the child was
    forked from.
    """
    with open(stdin_path, "rb") as stdin, open(os.devnull, "wb") as null:
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdin=stdin, stdout=null, stderr=subprocess.PIPE, env=env)
        deadline = start + timeout
        hwm = 0
        while True:
            hwm = max(hwm, vm_hwm(p.pid))
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise RuntimeError(f"{cmd[0]} ran over {timeout}s")
            time.sleep(0.01)
        wall = time.monotonic() - start
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{err[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, hwm


def vm_hwm(pid):
    """The peak resident set size of a running process, in bytes (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start_broker(kpipe, timeout=30):
    p = subprocess.Popen([kpipe, "broker", "--listen", "127.0.0.1:0", "--topic", f"{TOPIC}:3",
                          "--topic", "orders:3"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + timeout
    os.set_blocking(p.stdout.fileno(), False)
    buf = ""
    while time.monotonic() < deadline:
        chunk = p.stdout.readline()
        buf += chunk or ""
        if buf.endswith("\n"):
            return p, buf.strip()
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    p.wait(timeout=10)
    sys.exit("bench_cli: the embedded broker did not print its address")


def write_inputs(d, n, n_py):
    value = "v" * 100
    paths = {k: os.path.join(d, k) for k in ("raw", "json", "kcat", "py", "orders")}
    with open(paths["raw"], "w") as raw, open(paths["json"], "w") as js, \
            open(paths["kcat"], "w") as kc, open(paths["py"], "w") as py, \
            open(paths["orders"], "w") as orders:
        regions = ("eu", "us", "apac")
        for i in range(n):
            key = f"key-{i:08d}"
            raw.write(value + "\n")
            js.write(f'{{"key":"{key}","value":"{value}"}}\n')
            kc.write(f"{key}\t{value}\n")
            if i < n_py:
                py.write(f"{key}\t{value}\n")
            # About 100 bytes of JSON, with the fields the quickstart's
            # plugins read: a customer (redact drops records without
            # one), a card to mask, a region prefix for route.
            orders.write(f'{{"key":"{regions[i % 3]}-{i:08d}","value":{{"customer":"c{i % 9973:05d}",'
                         f'"amount":{i % 1000}.5,"card":{{"number":"4111111111111111","cvv":"123"}},'
                         f'"note":"xxxxxxxxxx"}}}}\n')
    return paths


PYTHON_PRODUCER = r"""
import sys
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers=sys.argv[1].split(","), acks="all", linger_ms=10)
for line in sys.stdin.buffer:
    k, _, v = line.rstrip(b"\n").partition(b"\t")
    p.send(sys.argv[2], key=k, value=v)
p.flush(timeout=600)
p.close(timeout=60)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--python-records", type=int, default=0, help="default: records/20")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--brokers", default="", help="use these brokers instead of an embedded one")
    ap.add_argument("--only", default="", help="comma-separated clients to run")
    args = ap.parse_args()
    n, n_py = args.records, args.python_records or max(1000, args.records // 20)

    tmp = tempfile.mkdtemp(prefix="kpipe-bench-cli-")
    broker = None
    try:
        kpipe = os.path.join(tmp, "kpipe")
        minprod = os.path.join(tmp, "minprod")
        sh(["go", "build", "-o", kpipe, "./cmd/kpipe"])
        sh(["go", "build", "-o", minprod, "./scripts/minprod"])
        sh(["make", "plugins"])
        kcat = shutil.which("kcat") or shutil.which("kafkacat")
        try:
            import kafka  # noqa: F401
            have_python = True
        except ImportError:
            have_python = False

        if args.brokers:
            brokers = args.brokers
        else:
            broker, brokers = start_broker(kpipe)
        print(f"bench_cli: broker {brokers}{'' if args.brokers else ' (embedded, kfake)'}, "
              f"{n} records ({n_py} for kafka-python)", file=sys.stderr, flush=True)
        inputs = write_inputs(tmp, n, n_py)

        wat = os.path.join(ROOT, "examples", "plugins", "wat")
        wat_cfg = os.path.join(tmp, "wat.hcl")
        with open(wat_cfg, "w") as f:
            f.write(f'pipeline "bench" {{\n  topic = "{TOPIC}"\n'
                    f'  interceptor "noop" {{ module = "{wat}/noop.wasm" }}\n'
                    f'  partitioner {{ module = "{wat}/keyhash.wasm" }}\n}}\n')
        none_cfg = os.path.join(tmp, "none.hcl")
        with open(none_cfg, "w") as f:
            f.write('kafka {\n  client_id = "kpipe-quickstart"\n  acks = "all"\n  linger = "5ms"\n}\n'
                    'pipeline "orders" {\n  topic = "orders"\n  key_serializer { builtin = "string" }\n}\n')
        quickstart = os.path.join(ROOT, "examples", "quickstart.hcl")
        run = [kpipe, "--log-level", "error", "run", "--brokers", brokers, "--input", "-"]
        clients = {
            "minprod": ([minprod, "--brokers", brokers, "--topic", TOPIC], inputs["raw"], n),
            "kpipe-raw": (run + ["--topic", TOPIC, "--format", "raw"], inputs["raw"], n),
            "kpipe-json": (run + ["--topic", TOPIC], inputs["json"], n),
            "kpipe-wat": (run + ["--config", wat_cfg], inputs["json"], n),
            "kpipe-none": (run + ["--config", none_cfg], inputs["orders"], n),
            "kpipe-quickstart": (run + ["--config", quickstart], inputs["orders"], n),
        }
        if kcat:
            # kpipe's defaults where librdkafka's differ (idempotence
            # off, 5ms linger); acks=all and no compression are both's.
            clients["kcat"] = ([kcat, "-P", "-b", brokers, "-t", TOPIC, "-K", "\t",
                                "-X", "acks=all", "-X", "enable.idempotence=true",
                                "-X", "linger.ms=10"], inputs["kcat"], n)
        else:
            print("bench_cli: kcat not found (apt-get install kcat): skipped", file=sys.stderr)
        if have_python:
            clients["kafka-python"] = ([sys.executable, "-c", PYTHON_PRODUCER, brokers, TOPIC],
                                       inputs["py"], n_py)
        else:
            print("bench_cli: kafka-python not found (pip install kafka-python): skipped",
                  file=sys.stderr)
        if args.only:
            want = set(args.only.split(","))
            clients = {k: v for k, v in clients.items() if k in want}

        # A round that fails (a client over its time limit) stops the run;
        # every child is bounded by its own time limit.
        names = list(clients)
        results = {k: [] for k in names}  # name -> [(records/s, cpu us/record, rss MB)]
        rounds = []
        # Warm up: compile the plugins into kpipe's compilation cache (the
        # user's, so later runs start warm too) and create the topics, so
        # that no round pays for either.
        env = None
        head = os.path.join(tmp, "head")
        for name in names:
            cmd, stdin, _ = clients[name]
            with open(stdin, "rb") as src, open(head, "wb") as dst:
                dst.writelines(line for _, line in zip(range(100), src))
            try:
                run_measured(cmd, head, 600, env)
            except RuntimeError as e:
                sys.exit(f"bench_cli: warm-up of {name}: {e}")
        load_start = os.getloadavg()
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            got = {}
            for name in order:
                cmd, stdin, count = clients[name]
                limit = 120 + count / 2000  # seconds: generous even on a loaded machine
                try:
                    wall, cpu, rss = run_measured(cmd, stdin, limit, env)
                except RuntimeError as e:
                    sys.exit(f"bench_cli: {name}: {e}")
                got[name] = (count / wall, cpu / count * 1e6, rss / 2**20)
                results[name].append(got[name])
            rounds.append(got)
            print(f"round {r + 1}: " + ", ".join(f"{k} {got[k][0] / 1e3:.0f}k/s" for k in order),
                  file=sys.stderr, flush=True)

        load_end = os.getloadavg()
        print(f"\n{'client':18} {'records/s':>11} {'CPU us/rec':>11} {'peak RSS':>9}"
              f"   (medians of {args.rounds} interleaved rounds, {n} records)")
        for name in names:
            rs = results[name]
            print(f"{name:18} {statistics.median(x[0] for x in rs):11.0f} "
                  f"{statistics.median(x[1] for x in rs):11.2f} "
                  f"{statistics.median(x[2] for x in rs):7.0f}MB")
        print()
        for a, b, what, target, label in RATIOS:
            if a not in clients or b not in clients:
                continue
            idx = 0 if what == "rate" else 1
            ratios = [rd[a][idx] / rd[b][idx] for rd in rounds]
            med = statistics.median(ratios)
            verdict = ""
            if target is not None:
                ok = med >= target if what == "rate" else med <= target
                verdict = f"  {'met' if ok else 'NOT met'}"
            print(f"{label:58} median {med:6.2f}  (range {min(ratios):.2f}-{max(ratios):.2f}){verdict}")
        if "kpipe-quickstart" in clients:
            rss = statistics.median(x[2] for x in results["kpipe-quickstart"])
            print(f"{'peak RSS, quickstart (target <= 120 MB)':58} median {rss:6.0f}MB  "
                  f"{'met' if rss <= 120 else 'NOT met'}")
        print(f"\nload average (1, 5, 15 min) at the start {load_start[0]:.1f} {load_start[1]:.1f} "
              f"{load_start[2]:.1f}, at the end {load_end[0]:.1f} {load_end[1]:.1f} {load_end[2]:.1f}; "
              f"{os.cpu_count()} CPUs")
    finally:
        if broker is not None:
            broker.terminate()
            try:
                broker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
