"""Benchmarks (1) and (4a): `POST /api/v1/closures` and `POST /api/v1/authorizations` against a
hello-world endpoint served by the same gunicorn (sync workers, as `closeout serve`) and Django.

    python -m benchmarks.bench_api [--engine sqlite|postgres] [--seconds 10] [--cards 3000]

Prints req/s with p50/p99 for each and the ratios: closures ≥ 0.4, authorizations ≥ 0.5.
"""

from __future__ import annotations

import argparse
import random

from benchmarks import _harness as h


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cards", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (`closeout serve --workers`)")
    args = parser.parse_args()

    db = h.BenchDatabase(args.engine)
    try:
        db.setup_django()
        from closeout.api.keys import apikey_create

        numbers = h.issue_cards(args.cards)
        _, token = apikey_create(name="bench", scope="partner")
        auth = {"Authorization": f"Bearer {token}"}
        server = h.Server(db, workers=args.web_workers, CLOSEOUT_DISPATCH="1")
        try:
            kw = dict(seconds=args.seconds, processes=args.processes, threads=args.threads)
            h.load(server.port, lambda i: h.json_request("GET", "/bench/hello"), total=500, seconds=3)  # warm up

            def closure(i):
                return h.json_request("POST", "/api/v1/closures", {
                    "card_number": numbers[i], "holder_name": "Bench Holder",
                    "id_document": {"type": "hkid", "number": h.HKID}, "contact": {"email": "bench@example.test"},
                    "refund_destination": {"type": "original"}, "channel": "partner_api", "reason": "bench",
                }, **auth, **{"Idempotency-Key": f"bench-{i}"})

            def authorization(i):
                return h.json_request("POST", "/api/v1/authorizations", {
                    "card_number": numbers[random.randrange(len(numbers))], "amount": 100, "currency": "CNY"}, **auth)

            hello = h.load(server.port, lambda i: h.json_request("POST", "/bench/hello", {}), total=10**7, **kw)
            authz = h.load(server.port, authorization, total=10**7, **kw)
            closures = h.load(server.port, closure, total=len(numbers), **kw)
            hello_after = h.load(server.port, lambda i: h.json_request("POST", "/bench/hello", {}), total=10**7, **kw)
        finally:
            server.stop()
    finally:
        db.close()

    baseline = (hello.rate + hello_after.rate) / 2
    print(f"machine: {h.machine()}; engine {args.engine}; gunicorn {args.web_workers} sync workers; "
          f"{args.processes}x{args.threads} loopback connections")
    print(hello.line("hello (POST, before)"))
    print(hello_after.line("hello (POST, after)"))
    print(closures.line("POST /api/v1/closures"))
    print(authz.line("POST /api/v1/authorizations"))
    print(h.ratio_line("(1) closures / hello", closures.rate, baseline, ">= 0.4"))
    print(h.ratio_line("(4) authorizations / hello", authz.rate, baseline, ">= 0.5"))


if __name__ == "__main__":
    main()
