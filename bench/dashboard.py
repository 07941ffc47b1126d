"""Dashboard benchmark: server time of the Sessions page and the Overview with 100,000 sessions.

One run fills a temporary SQLite file and a temporary PostgreSQL database with one game
holding N sessions (default 100,000) spread over the last 30 days (about 60 % paid, 10 %
failed, the rest pending, cancelled or expired; disputes on 1 % of the paid ones; most
paid sessions fulfilled), starts `toffeepay serve` on each (127.0.0.1 only), signs in,
and requests each page one at a time. It reports the server's own time for each page
(its Server-Timing header) at p50/p95/p99, the client's round trip, and each page's
weight (HTML, and the stylesheet once), against a baseline measured in the same run: the
sign-in page, which touches no game data.

    python bench/dashboard.py                  # 100,000 sessions, 200 requests per page
    python bench/dashboard.py --sessions 20000 --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
GAME_ID = "bench_game"
PG_ADMIN_URL = os.environ.get("TOFFEEPAY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
EMAIL = "bench@studio.example"
PASSWORD = "a benchmark passphrase"
TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def fill(db_url: str, sessions: int, seed: int = 7) -> None:
    """Register the game and an owner account, then insert the sessions, payments and disputes in bulk."""
    from sqlalchemy import insert

    from toffeepay_server.domain import ids
    from toffeepay_server.domain.accounts import Role
    from toffeepay_server.services import accounts, games
    from toffeepay_server.services.context import ServiceContext
    from toffeepay_server.store import tables
    from toffeepay_server.store.database import Database

    rng = random.Random(seed)
    ctx = ServiceContext(db=Database(db_url, pool_size=2), public_url="http://127.0.0.1")
    try:
        await games.create_game(ctx, GAME_ID)
        await accounts.create_user(ctx, EMAIL, PASSWORD)
        await accounts.grant(ctx, EMAIL, GAME_ID, Role.OWNER)
        now = datetime.now(UTC)
        batch: dict[str, list[dict[str, Any]]] = {"sessions": [], "payments": [], "disputes": []}

        async def flush() -> None:
            async with ctx.db.transaction() as uow:
                for name in ("sessions", "payments", "disputes"):
                    if batch[name]:
                        await uow.conn.execute(insert(getattr(tables, name)), batch[name])
                        batch[name] = []

        for _i in range(sessions):
            created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
            roll = rng.random()
            status = "paid" if roll < 0.6 else "failed" if roll < 0.7 else "cancelled" if roll < 0.8 else "expired"
            session_id, payment_id = ids.new_id(ids.SESSION), None
            currency, price = ("USD", 499) if rng.random() < 0.8 else ("EUR", 299)
            user_id = f"player_{rng.randrange(20000)}"
            settled = created + timedelta(seconds=20)
            if status in ("paid", "failed"):
                payment_id = ids.new_id(ids.PAYMENT)
                batch["payments"].append(
                    {
                        "id": payment_id,
                        "session_id": session_id,
                        "game_id": GAME_ID,
                        "mode": "sandbox",
                        "user_id": user_id,
                        "status": "succeeded" if status == "paid" else "failed",
                        "amount": price,
                        "currency": currency,
                        "method": "card",
                        "details": "50 Gold Coins",
                        "processor": "sandbox",
                        "failure_code": None if status == "paid" else "card_declined",
                        "created_at": created + timedelta(seconds=10),
                        "succeeded_at": settled if status == "paid" else None,
                        "failed_at": settled if status == "failed" else None,
                    }
                )
                if status == "paid" and rng.random() < 0.01:
                    batch["disputes"].append(
                        {
                            "id": ids.new_id(ids.DISPUTE),
                            "game_id": GAME_ID,
                            "mode": "sandbox",
                            "payment_id": payment_id,
                            "session_id": session_id,
                            "user_id": user_id,
                            "reason": "fraudulent",
                            "amount": price,
                            "currency": currency,
                            "processor": "sandbox",
                            "processor_dispute_id": uuid.uuid4().hex,
                            "created_at": settled + timedelta(days=1),
                        }
                    )
            batch["sessions"].append(
                {
                    "id": session_id,
                    "game_id": GAME_ID,
                    "mode": "sandbox",
                    "user_id": user_id,
                    "status": status,
                    "title": "50 Gold Coins",
                    "price": price,
                    "currency": currency,
                    "metadata": {},
                    "payment_id": payment_id,
                    "event_sequence": 4,
                    "expires_at": created + timedelta(minutes=30),
                    "created_at": created,
                    "paid_at": settled if status == "paid" else None,
                    "failed_at": settled if status == "failed" else None,
                    "cancelled_at": created + timedelta(minutes=1) if status == "cancelled" else None,
                    "expired_at": created + timedelta(minutes=30) if status == "expired" else None,
                    "fulfilled_at": settled if status == "paid" and rng.random() < 0.97 else None,
                    # Already reported, so the fulfilment sweeper has no backlog to work through.
                    "fulfillment_overdue_at": settled if status == "paid" else None,
                }
            )
            if len(batch["sessions"]) >= 2000:
                await flush()
        await flush()
        if ctx.db.is_postgres:
            # What autovacuum does soon after a bulk load: statistics, and the visibility map
            # that lets counts read the indexes alone.
            import asyncpg
            from sqlalchemy.engine import make_url

            dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("VACUUM ANALYZE")
            finally:
                await conn.close()
    finally:
        await ctx.db.dispose()


def pg_database() -> tuple[str, Any]:
    import asyncpg

    name = f"toffeepay_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, lambda: asyncio.run(
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(base: str, pages: dict[str, str], requests: int) -> dict[str, Any]:
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/dashboard/sign-in")
    token = TOKEN.search(form.text).group(1)  # type: ignore[union-attr]
    signed = client.post("/dashboard/sign-in", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD})
    assert signed.status_code == 303, signed.text
    css = re.search(r'href="(/dashboard/static/dashboard.css[^"]*)"', client.get(pages["overview"]).text)
    css_bytes = len(client.get(css.group(1)).content) if css else 0  # type: ignore[union-attr]
    results: dict[str, Any] = {}
    anonymous = httpx.Client(base_url=base, timeout=30)
    for name, path in {"baseline (sign-in page)": "/dashboard/sign-in", **pages}.items():
        use = anonymous if path == "/dashboard/sign-in" else client
        first = float(use.get(path).headers["server-timing"].split("dur=")[1])
        for _ in range(4):  # warm-up
            use.get(path)
        server, rtt, size = [], [], 0
        for _ in range(requests):
            started = time.perf_counter()
            response = use.get(path)
            rtt.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
            server.append(float(response.headers["server-timing"].split("dur=")[1]))
            size = len(response.content)
        results[name] = {
            "server_first_ms": round(first, 2),
            "server_p50_ms": round(statistics.median(server), 2),
            "server_p95_ms": round(percentile(server, 0.95), 2),
            "server_p99_ms": round(percentile(server, 0.99), 2),
            "round_trip_p50_ms": round(statistics.median(rtt), 2),
            "html_bytes": size,
        }
    results["stylesheet_bytes"] = css_bytes
    return results


def run_engine(engine: str, sessions: int, requests: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="toffeepay-bench-dash-"))
    drop = None
    if engine == "sqlite":
        db_url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        db_url, drop = pg_database()
    try:
        from toffeepay_server.store.migrate import upgrade

        upgrade(db_url)
        started = time.perf_counter()
        asyncio.run(fill(db_url, sessions))
        print(f"{engine}: {sessions} sessions inserted in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        port = free_port()
        env = {
            **os.environ,
            "TOFFEEPAY_DATABASE_URL": db_url,
            "TOFFEEPAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TOFFEEPAY_DASHBOARD_SIGNIN_LIMIT": "off",
            "TOFFEEPAY_PUBLIC_RATE_LIMIT": "off",
        }
        log = (tmp / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "toffeepay_server", "serve", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp / "server.log").read_text()[-2000:])
                time.sleep(0.2)
            game = f"/dashboard/{GAME_ID}/sandbox"
            pages = {
                "overview": f"{game}/",
                "sessions": f"{game}/sessions",
                "sessions, status=paid": f"{game}/sessions?status=paid",
            }
            return measure(base, pages, requests)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    finally:
        if drop:
            drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    report = {
        "when": datetime.now(UTC).isoformat(),
        "sessions": args.sessions,
        "requests": args.requests,
        "cpus": os.cpu_count(),
        "engines": {engine: run_engine(engine, args.sessions, args.requests) for engine in args.engines.split(",")},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"dashboard-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print("| engine | page | first request | server p50 | p95 | p99 | round trip p50 | HTML |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for engine, pages in report["engines"].items():
        for name, r in pages.items():
            if isinstance(r, dict):
                print(
                    f"| {engine} | {name} | {r['server_first_ms']} ms | {r['server_p50_ms']} ms | "
                    f"{r['server_p95_ms']} ms | "
                    f"{r['server_p99_ms']} ms | {r['round_trip_p50_ms']} ms | {r['html_bytes'] / 1024:.1f} KiB |"
                )
        css = pages["stylesheet_bytes"] / 1024
        print(f"| {engine} | stylesheet (cached after the first page) | | | | | | {css:.1f} KiB |")
    print(f"\n{out}")


if __name__ == "__main__":
    main()
