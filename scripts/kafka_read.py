#!/usr/bin/env python3
"""Read every record of a topic with kafka-python and print one JSON line each.

Used by kpipe's cross-client tests (internal/crossclient) to check that what
kpipe produces is what a different client sees. Each line is an object:

  {"partition": 0, "offset": 3, "key": "6b31" | null, "value": "..." | null,
   "headers": [["name", "76616c7565" | null], ...]}

key, value and header values are hex, so that arbitrary bytes survive; null is
a null key, a tombstone value or a null header value. Lines come out ordered by
partition, then offset.

The consumer reads from the beginning of every partition up to the end offset
it sees when it starts (the last stable offset under read_committed) and exits
0; it exits 1 if that takes longer than --timeout seconds, and 2 if the
installed kafka-python is too old to honour --isolation.
"""

import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT[,HOST:PORT...]")
    ap.add_argument("--topic", required=True)
    ap.add_argument(
        "--isolation",
        default="read_committed",
        choices=["read_committed", "read_uncommitted"],
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds")
    args = ap.parse_args()

    try:
        from kafka import KafkaConsumer, TopicPartition
    except ImportError as e:
        print(f"kafka_read.py: kafka-python is not installed: {e}", file=sys.stderr)
        return 2
    if "isolation_level" not in KafkaConsumer.DEFAULT_CONFIG:
        print(
            "kafka_read.py: this kafka-python has no isolation_level; install 2.1 or later",
            file=sys.stderr,
        )
        return 2

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap.split(","),
        isolation_level=args.isolation,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
    )
    try:
        deadline = time.monotonic() + args.timeout
        parts = None
        while parts is None:
            parts = consumer.partitions_for_topic(args.topic)
            if parts is None:
                if time.monotonic() > deadline:
                    print(f"kafka_read.py: topic {args.topic!r} not found", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        tps = [TopicPartition(args.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)

        records = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                left = {tp.partition: (consumer.position(tp), end[tp]) for tp in tps}
                print(
                    f"kafka_read.py: timed out; (position, end) by partition: {left}",
                    file=sys.stderr,
                )
                return 1
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()

    def hexs(b):
        return None if b is None else b.hex()

    records.sort(key=lambda r: (r.partition, r.offset))
    for r in records:
        line = {
            "partition": r.partition,
            "offset": r.offset,
            "key": hexs(r.key),
            "value": hexs(r.value),
            "headers": [[k, hexs(v)] for k, v in (r.headers or [])],
        }
        print(json.dumps(line, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
