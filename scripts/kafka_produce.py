#!/usr/bin/env python3
"""Produce records with kafka-python, one per JSON line on stdin.

Used by kpipe's cross-client tests (internal/crossclient) to compare where
kafka-python's default partitioner (murmur2 of the key, like the Java client)
puts records with where kpipe puts them. Each input line is an object:

  {"key": "6b31" | null, "value": "..." | null}

with key and value in hex (null for a null key or value). For each record, in
input order, one line is printed once the broker acknowledged it:

  {"partition": 2, "offset": 17}

Exits 1 if a record fails.
"""

import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT[,HOST:PORT...]")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per record")
    args = ap.parse_args()

    try:
        from kafka import KafkaProducer
    except ImportError as e:
        print(f"kafka_produce.py: kafka-python is not installed: {e}", file=sys.stderr)
        return 2

    def unhex(s):
        return None if s is None else bytes.fromhex(s)

    producer = KafkaProducer(bootstrap_servers=args.bootstrap.split(","), acks="all")
    try:
        futures = []
        for line in sys.stdin:
            if not line.strip():
                continue
            rec = json.loads(line)
            futures.append(
                producer.send(args.topic, key=unhex(rec.get("key")), value=unhex(rec.get("value")))
            )
        producer.flush(timeout=args.timeout)
        for f in futures:
            md = f.get(timeout=args.timeout)
            print(json.dumps({"partition": md.partition, "offset": md.offset}, separators=(",", ":")))
    except Exception as e:  # any failure of any record fails the run
        print(f"kafka_produce.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        producer.close(timeout=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
