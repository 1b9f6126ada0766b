"""CPU time and SQL statements per request, in one process (Django test client, no network).

    python -m benchmarks.cpu_per_request [--engine sqlite|postgres] [--requests 300] [--profile closures]

The gunicorn figures of `bench_api` depend on what else runs on the machine; process CPU time per
request does not (much), so this script shows where a ratio comes from: each endpoint's CPU and
statement count next to the hello-world endpoint's, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from benchmarks import _harness as h


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", choices=["closures", "authorizations"], default=None,
                        help="print a pyinstrument profile of this endpoint")
    args = parser.parse_args()

    db = h.BenchDatabase(args.engine)
    try:
        db.setup_django()
        from django.db import connection
        from django.test import Client

        from closeout.api.keys import apikey_create

        numbers = h.issue_cards(2 * args.requests + 20)
        spare = numbers[args.requests + 10:]  # authorizations ask about cards no closure touched
        _, token = apikey_create(name="bench", scope="partner")
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        counter = iter(range(10**9))

        def hello():
            return client.post("/bench/hello", "{}", content_type="application/json")

        def closure():
            i = next(counter)
            return client.post("/api/v1/closures", json.dumps({
                "card_number": numbers[i], "holder_name": "Bench Holder",
                "id_document": {"type": "hkid", "number": h.HKID}, "contact": {"email": "bench@example.test"},
                "refund_destination": {"type": "original"}, "channel": "partner_api", "reason": "bench",
            }), content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"cpu-{i}")

        def authorization():
            return client.post("/api/v1/authorizations", json.dumps({
                "card_number": spare[random.randrange(len(spare))], "amount": 100, "currency": "CNY"}),
                content_type="application/json")

        endpoints = {"hello": (hello, 200), "closures": (closure, 201), "authorizations": (authorization, 200)}
        for call, status in endpoints.values():  # warm up caches and connections
            for _ in range(5):
                assert call().status_code == status
        results = {}
        for name, (call, status) in endpoints.items():
            statements = []

            def counted(execute, sql, *rest, seen=statements):
                seen.append(sql)
                return execute(sql, *rest)

            with connection.execute_wrapper(counted):
                call()
            started = time.process_time()
            n = {"hello": 10 * args.requests, "closures": args.requests - 10}.get(name, args.requests)
            for _ in range(n):
                response = call()
                assert response.status_code == status, response.content
            results[name] = ((time.process_time() - started) / n * 1000, len(statements))
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            call = endpoints[args.profile][0]
            with profiler:
                for _ in range(5 if args.profile == "closures" else 50):
                    call()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
    finally:
        db.close()

    base = results["hello"][0]
    print(f"machine: {h.machine()}; engine {args.engine}; one process, Django test client")
    for name, (cpu, statements) in results.items():
        print(f"{name:<16} {cpu:7.2f} ms CPU/request  {statements:3d} SQL statements  "
              f"ratio to hello {base / cpu:.3f}")


if __name__ == "__main__":
    main()
