#!/usr/bin/env python3
"""Send keyed records with headers through a kpipe gateway with kafka-python.

Used by kpipe's end-to-end gateway test (cmd/kpipe/gateway_test.go) and, with
--transactional, to check that a transactional producer gets the gateway's
documented error. Record i has key PREFIX-i, value value-i and header i=i,
and goes to --partition.

Prints "sent N" and exits 0 once every record was acknowledged (or, with
acks 0, flushed); exits 1 if one failed.
"""

import argparse
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--partition", type=int, default=0)
    ap.add_argument("--prefix", default="py")
    ap.add_argument("--acks", default="all", help="0, 1 or all")
    ap.add_argument("--compression", default=None, help="gzip, snappy, lz4, zstd or none")
    ap.add_argument("--transactional", action="store_true")
    ap.add_argument("--sasl", default=None, help="MECHANISM:USER:PASSWORD: authenticate with SASL")
    ap.add_argument("--cafile", default=None, help="connect with TLS, trusting this PEM CA file")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    from kafka import KafkaProducer

    acks = args.acks if args.acks == "all" else int(args.acks)
    comp = None if args.compression in (None, "none") else args.compression
    if args.transactional:
        try:
            p = KafkaProducer(bootstrap_servers=args.bootstrap, transactional_id="kpipe-gw-py", max_block_ms=20000)
            p.init_transactions()
            print("no error")
            p.close(timeout=5)
        except Exception as e:
            print(f"{type(e).__name__}: {e}")
        return 0

    security = {}
    if args.cafile:
        security.update(security_protocol="SSL", ssl_cafile=args.cafile)
    if args.sasl:
        mechanism, user, password = args.sasl.split(":", 2)
        security.update(security_protocol="SASL_SSL" if args.cafile else "SASL_PLAINTEXT", sasl_mechanism=mechanism,
                        sasl_plain_username=user, sasl_plain_password=password)
    p = KafkaProducer(bootstrap_servers=args.bootstrap, acks=acks, compression_type=comp, linger_ms=5, **security)
    futures = []
    try:
        for i in range(args.count):
            futures.append(p.send(args.topic, key=f"{args.prefix}-{i}".encode(), value=f"value-{i}".encode(),
                                  headers=[("i", str(i).encode())], partition=args.partition))
        p.flush(timeout=args.timeout)
        for f in futures:
            f.get(timeout=args.timeout)
    except Exception as e:
        print(f"gateway_produce.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        p.close(timeout=args.timeout)
    print(f"sent {args.count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
