"""Lists benchmark: the first page of ListSessions (and ListPayments) with 1,000,000 sessions in one game.

One run fills a temporary SQLite file and a temporary PostgreSQL database (dropped after)
with one game holding N sessions (default 1,000,000) in its sandbox mode, created over the
last 90 days: 60 % paid, 10 % failed, 12 % cancelled, the rest expired, and those of the
last 20 minutes still pending; 100,000 players with about 9 sessions each hold 90 % of them,
20 big spenders the other 10 % (about 5,000 each). Paid and failed sessions have their
payment. The rows go straight into the database in large transactions (the triggers that
count sessions run as for any insert), then `toffeepay serve` starts on 127.0.0.1 and each
list is asked N times over HTTP (Connect JSON, the game's sandbox key), one at a time. It
reports the server's own time (its Server-Timing header) and the client's round trip at
p50/p95/p99, against a baseline measured in the same run: the empty RPC HealthService/Check.
Each answer's `total` is checked against a count of the rows made by the fill.

    python bench/lists.py                                  # 1,000,000 sessions, 200 requests each
    python bench/lists.py --sessions 100000 --requests 50 --engines sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
GAME_ID = "bench_game"
MODE = "sandbox"
PG_ADMIN_URL = os.environ.get("TOFFEEPAY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 20_000
PLAYERS = 100_000
BIG_SPENDERS = 20

SESSION_COLUMNS = [
    "id",
    "game_id",
    "mode",
    "user_id",
    "status",
    "title",
    "price",
    "currency",
    "metadata",
    "payment_id",
    "event_sequence",
    "expires_at",
    "created_at",
    "paid_at",
    "failed_at",
    "cancelled_at",
    "expired_at",
    "fulfilled_at",
    "fulfillment_overdue_at",
]
PAYMENT_COLUMNS = [
    "id",
    "session_id",
    "game_id",
    "mode",
    "user_id",
    "status",
    "amount",
    "currency",
    "method",
    "details",
    "processor",
    "created_at",
    "succeeded_at",
    "failed_at",
    "amount_refunded",
]


def micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


class Truth:
    """What the fill made, to check each answer's total against."""

    def __init__(self) -> None:
        self.status: Counter[str] = Counter()
        self.user: Counter[str] = Counter()
        self.user_status: Counter[tuple[str, str]] = Counter()
        self.paid_by_user: Counter[str] = Counter()
        self.day: Counter[str] = Counter()


def rows(sessions: int, now: datetime, truth: Truth, seed: int = 11) -> Any:
    """Batches of (session rows, payment rows) as tuples in the columns' order."""
    from toffeepay_server.domain import ids

    rng = random.Random(seed)
    span = 90 * 86_400
    batch_s: list[tuple[Any, ...]] = []
    batch_p: list[tuple[Any, ...]] = []
    for _ in range(sessions):
        age = rng.uniform(0, span)
        created = now - timedelta(seconds=age)
        if age < 20 * 60:
            status = "pending"
        else:
            roll = rng.random()
            status = "paid" if roll < 0.6 else "failed" if roll < 0.7 else "cancelled" if roll < 0.82 else "expired"
        big = rng.random() < 0.1
        user_id = f"whale_{rng.randrange(BIG_SPENDERS)}" if big else f"player_{rng.randrange(PLAYERS)}"
        truth.status[status] += 1
        truth.user[user_id] += 1
        truth.user_status[user_id, status] += 1
        session_id, payment_id = ids.new_id(ids.SESSION), None
        currency, price = ("USD", 499) if rng.random() < 0.8 else ("EUR", 299)
        c = micros(created)
        settled = c + 20_000_000
        if status in ("paid", "failed"):
            payment_id = ids.new_id(ids.PAYMENT)
            paid = status == "paid"
            if paid:
                truth.paid_by_user[user_id] += 1
            batch_p.append(
                (
                    payment_id,
                    session_id,
                    GAME_ID,
                    MODE,
                    user_id,
                    "succeeded" if paid else "failed",
                    price,
                    currency,
                    "card",
                    "50 Gold Coins",
                    "sandbox",
                    c + 10_000_000,
                    settled if paid else None,
                    None if paid else settled,
                    0,
                )
            )
        batch_s.append(
            (
                session_id,
                GAME_ID,
                MODE,
                user_id,
                status,
                "50 Gold Coins",
                price,
                currency,
                "{}",
                payment_id,
                1 if status == "pending" else 3,
                # Those still pending stay so for the whole run: the totals checked do not move.
                c + (3 * 3600 if status == "pending" else 30 * 60) * 1_000_000,
                c,
                settled if status == "paid" else None,
                settled if status == "failed" else None,
                c + 60_000_000 if status == "cancelled" else None,
                c + 30 * 60_000_000 if status == "expired" else None,
                settled if status == "paid" else None,
                None,
            )
        )
        if len(batch_s) >= BATCH:
            yield batch_s, batch_p
            batch_s, batch_p = [], []
    if batch_s:
        yield batch_s, batch_p


def migration(file: str) -> Any:
    """A migration that adds counts kept by triggers (its triggers and backfill run after the load)."""
    import importlib.util

    from toffeepay_server.store.migrate import MIGRATIONS

    spec = importlib.util.spec_from_file_location(file, MIGRATIONS / "versions" / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# (table, its counts table, the migration that added them, the one with their PostgreSQL triggers as they are)
COUNTED = [
    ("sessions", "session_counts", "0011_session_counts.py", "0015_count_triggers_before_rows.py"),
    ("payments", "payment_counts", "0014_payment_counts.py", "0014_payment_counts.py"),
]


def bulk_ddl(dialect: Any) -> tuple[list[str], list[str]]:
    """What to drop before a bulk load (indexes, the counting triggers) and to run after it
    (the indexes built in one pass, the triggers back, and the counts from the rows, as the
    migrations that introduced them do)."""
    from sqlalchemy.schema import CreateIndex

    from toffeepay_server.store import tables

    indexes = [i for t in (tables.sessions, tables.payments) for i in t.indexes]
    postgres = dialect.name == "postgresql"
    before = [f"DROP INDEX {i.name}" for i in indexes]
    after = [str(CreateIndex(i).compile(dialect=dialect)) for i in indexes]
    for table, counts, file, postgres_file in COUNTED:
        m = migration(file)
        if postgres:
            before += [
                f"DROP TRIGGER {counts}_update ON {table}",
                f"DROP TRIGGER {counts}_insert_delete ON {table}",
                f"DROP FUNCTION {counts}_track()",
            ]
        else:
            before += [f"DROP TRIGGER {counts}_{event}" for event in ("insert", "update", "delete")]
        before.append(f"DELETE FROM {counts}")
        after += migration(postgres_file).POSTGRES_TRIGGERS if postgres else m.SQLITE_TRIGGERS
        after.append(m.BACKFILL)
    return before, after


def fill_sqlite(path: Path, sessions: int, now: datetime, truth: Truth) -> None:
    from sqlalchemy.dialects import sqlite

    before, after = bulk_ddl(sqlite.dialect())
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        with db:
            for statement in before:
                db.execute(statement)
        insert_s = "INSERT INTO sessions ({}) VALUES ({})".format(", ".join(SESSION_COLUMNS), ", ".join("?" * 19))
        insert_p = "INSERT INTO payments ({}) VALUES ({})".format(", ".join(PAYMENT_COLUMNS), ", ".join("?" * 15))
        for batch_s, batch_p in rows(sessions, now, truth):
            with db:
                db.executemany(insert_s, batch_s)
                db.executemany(insert_p, batch_p)
        with db:
            for statement in after:
                db.execute(statement)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


async def fill_postgres(dsn: str, sessions: int, now: datetime, truth: Truth) -> None:
    import asyncpg
    from sqlalchemy.dialects import postgresql

    before, after = bulk_ddl(postgresql.dialect())
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for statement in before:
                await conn.execute(statement)
        for batch_s, batch_p in rows(sessions, now, truth):
            async with conn.transaction():
                await conn.copy_records_to_table("sessions", records=batch_s, columns=SESSION_COLUMNS)
                await conn.copy_records_to_table("payments", records=batch_p, columns=PAYMENT_COLUMNS)
        await conn.execute("SET maintenance_work_mem = '256MB'")
        async with conn.transaction():
            for statement in after:
                await conn.execute(statement)
        # What autovacuum does soon after a bulk load: statistics, and the visibility map that
        # lets counts read the indexes alone.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def calls(truth: Truth, now: datetime) -> dict[str, tuple[str, dict[str, Any], int | None]]:
    """name: (RPC, request, the total it must answer; None: not checked)."""
    players = [u for u in truth.user if u.startswith("player_")]
    typical = max(players, key=lambda u: (truth.user[u], u))  # a regular player
    whale = max(truth.user, key=lambda u: truth.user[u])
    day = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = (now - timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sessions = "PaymentService/ListSessions"
    guide = {"game_id": GAME_ID, "status": "paid", "limit": 50, "offset": 0}
    return {
        "baseline (HealthService/Check)": ("HealthService/Check", {}, None),
        "sessions, unfiltered": (sessions, {"limit": 50}, sum(truth.status.values())),
        "sessions, user_id + status paid (guide)": (
            sessions,
            {**guide, "user_id": typical},
            truth.user_status[typical, "paid"],
        ),
        "sessions, user_id + status paid, biggest user": (
            sessions,
            {**guide, "user_id": whale},
            truth.user_status[whale, "paid"],
        ),
        "sessions, status paid": (sessions, {"status": "paid", "limit": 50}, truth.status["paid"]),
        "sessions, status expired": (sessions, {"status": "expired", "limit": 50}, truth.status["expired"]),
        "sessions, status pending": (sessions, {"status": "pending", "limit": 50}, truth.status["pending"]),
        "sessions, user_id": (sessions, {"user_id": typical, "limit": 50}, truth.user[typical]),
        "sessions, user_id, biggest user": (sessions, {"user_id": whale, "limit": 50}, truth.user[whale]),
        "sessions, from last day": (sessions, {"from": day, "limit": 50}, None),
        "sessions, from/to all 90 days": (sessions, {"from": start, "limit": 50}, sum(truth.status.values())),
        "payments, unfiltered": ("PaymentService/ListPayments", {"limit": 50}, sum(truth.paid_by_user.values())),
        "payments, user_id (guide)": (
            "PaymentService/ListPayments",
            {"game_id": GAME_ID, "user_id": typical, "limit": 50, "offset": 0},
            truth.paid_by_user[typical],
        ),
        "payments, user_id, biggest user": (
            "PaymentService/ListPayments",
            {"user_id": whale, "limit": 50},
            truth.paid_by_user[whale],
        ),
    }


def measure(base: str, key: str, todo: dict[str, tuple[str, dict[str, Any], int | None]], n: int) -> dict[str, Any]:
    client = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"})
    results: dict[str, Any] = {}
    for name, (rpc, body, expected) in todo.items():
        path = f"/pay.v1.{rpc}"
        first = client.post(path, json=body)
        assert first.status_code == 200, (name, first.status_code, first.text)
        total = first.json().get("total")
        if expected is not None and total != expected:
            raise SystemExit(f"{name}: total {total}, the fill made {expected}")
        for _ in range(4):  # warm-up
            client.post(path, json=body)
        server, rtt = [], []
        for _ in range(n):
            started = time.perf_counter()
            response = client.post(path, json=body)
            rtt.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, response.status_code)
            server.append(float(response.headers["server-timing"].split("dur=")[1]))
        results[name] = {
            "total": total,
            "server_first_ms": float(first.headers["server-timing"].split("dur=")[1]),
            "server_p50_ms": round(statistics.median(server), 2),
            "server_p95_ms": round(percentile(server, 0.95), 2),
            "server_p99_ms": round(percentile(server, 0.99), 2),
            "round_trip_p50_ms": round(statistics.median(rtt), 2),
            "round_trip_p99_ms": round(percentile(rtt, 0.99), 2),
        }
        print(f"  {name}: {results[name]}", file=sys.stderr)
    return results


def run_engine(engine: str, sessions: int, requests: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="toffeepay-bench-lists-"))
    pg_name = None
    if engine == "sqlite":
        db_url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        pg_name = f"toffeepay_bench_{uuid.uuid4().hex[:10]}"
        pg_admin(f'CREATE DATABASE "{pg_name}"')
        db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_name
    proc = None
    try:
        port = free_port()
        env = {
            **os.environ,
            "TOFFEEPAY_DATABASE_URL": db_url,
            "TOFFEEPAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TOFFEEPAY_RATE_LIMIT": "1000000/second",
        }
        created = subprocess.run(
            [sys.executable, "-m", "toffeepay_server", "games", "create", GAME_ID, "--json"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        key = json.loads(created.stdout)["sandbox_api_key"]
        now = datetime.now(UTC)
        truth = Truth()
        started = time.perf_counter()
        if engine == "sqlite":
            fill_sqlite(tmp / "bench.db", sessions, now, truth)
        else:
            asyncio.run(fill_postgres(db_url, sessions, now, truth))
        fill_seconds = time.perf_counter() - started
        print(f"{engine}: {sessions} sessions inserted in {fill_seconds:.0f} s", file=sys.stderr)
        with (tmp / "server.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "toffeepay_server", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
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
        return {"fill_seconds": round(fill_seconds, 1), "lists": measure(base, key, calls(truth, now), requests)}
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        if pg_name:
            pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
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
    out = RESULTS / f"lists-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print("| engine | list | total | server p50 | p95 | p99 | round trip p50 | p99 / baseline p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for engine, result in report["engines"].items():
        lists = result["lists"]
        baseline = next(iter(lists.values()))["server_p99_ms"]
        for name, r in lists.items():
            ratio = r["server_p99_ms"] / baseline if baseline else 0
            total = "" if r["total"] is None else f"{r['total']:,}"
            print(
                f"| {engine} | {name} | {total} | {r['server_p50_ms']} ms | {r['server_p95_ms']} ms | "
                f"{r['server_p99_ms']} ms | {r['round_trip_p50_ms']} ms | {ratio:.1f}x |"
            )
    print(f"\n{out}")


if __name__ == "__main__":
    main()
