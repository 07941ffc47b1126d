"""Replay benchmark: ReplayEvents of many events to one endpoint, beside normal traffic.

One `toffeepay worker` dispatches for one game with two sandbox endpoints, each at its own
receiver process: `replay` (the replay's target) and `normal`. `--events` old events are
written straight into the outbox (already fanned out, as after an outage), then:

  normal_alone     sessions created at `--rate` per second for `--duration` seconds:
                   latency at `normal` (arrival minus the event's timestamp)
  replay           ReplayEvents of every old event to `replay`: deliveries per second
                   from the call to the last arrival
  normal_beside    the same normal traffic while the replay runs: latency at `normal`

The aim: normal p99 beside the replay within 1.5x of normal_alone's p99.

    python bench/webhook_replay.py                        # both engines, 100,000 events
    python bench/webhook_replay.py --engines sqlite --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from webhooks import RESULTS, ReceiverProcess, latency_summary, make_database, produce, start_process, stop_process

HERE = Path(__file__).resolve().parent


async def setup(db_url: str, replay_url: str, normal_url: str, events: int) -> tuple[str, str, datetime]:
    """The game, its two endpoints and `events` old events; returns its sandbox key, the
    replay endpoint's id and when the old events start."""
    from toffeepay_server.domain.keys import Mode
    from toffeepay_server.services import games, webhooks
    from toffeepay_server.services.context import ServiceContext
    from toffeepay_server.store.database import Database
    from toffeepay_server.store.tables import events as table

    ctx = ServiceContext(db=Database(db_url), public_url="http://127.0.0.1", private_webhook_targets="sandbox")
    try:
        game = await games.create_game(ctx, "replay_game")
        target, _ = await webhooks.create_endpoint(
            ctx, game_id=game.game_id, mode=Mode.SANDBOX, url=f"{replay_url}/replay", events=["session.created"]
        )
        await webhooks.create_endpoint(
            ctx, game_id=game.game_id, mode=Mode.SANDBOX, url=f"{normal_url}/normal", events=["session.created"]
        )
        start = datetime.now(UTC) - timedelta(hours=1)
        for chunk in range(0, events, 5000):
            rows = []
            for i in range(chunk, min(events, chunk + 5000)):
                at = start + timedelta(milliseconds=i)
                event_id = str(uuid.uuid4())
                body = {
                    "id": event_id,
                    "event": "session.created",
                    "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "mode": "sandbox",
                    "data": {"session_id": f"sess_old{i}", "status": "pending", "game_id": game.game_id},
                }
                rows.append(
                    {
                        "id": event_id,
                        "game_id": game.game_id,
                        "mode": "sandbox",
                        "type": "session.created",
                        "session_id": None,
                        "sequence": None,
                        "body": body,
                        "created_at": at,
                        "fanned_out_at": at,
                    }
                )
            async with ctx.db.transaction() as uow:
                await uow.conn.execute(table.insert(), rows)
        return game.sandbox_api_key, target.id, start
    finally:
        await ctx.db.dispose()


async def replay(db_url: str, key: str, endpoint_id: str, since: datetime) -> int:
    from toffeepay_server.services import games, webhooks
    from toffeepay_server.services.context import ServiceContext
    from toffeepay_server.store.database import Database

    ctx = ServiceContext(db=Database(db_url), public_url="http://127.0.0.1")
    try:
        principal = await games.authenticate(ctx, key)
        assert principal is not None
        done = await webhooks.replay_events(ctx, principal, created_from=since, endpoint_id=endpoint_id)
        return done.replayed
    finally:
        await ctx.db.dispose()


def normal_traffic(db_url: str, key: str, receiver: ReceiverProcess, args: argparse.Namespace) -> dict[str, float]:
    receiver.reset()
    count = int(args.rate * args.duration)
    asyncio.run(produce(db_url, key, count, args.rate))
    return latency_summary([lat for _, lat in receiver.wait(count)])


def run_engine(engine: str, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    from toffeepay_server.store.migrate import upgrade

    target, normal = ReceiverProcess(), ReceiverProcess()
    db_url, drop = make_database(engine, tmp)
    results: list[dict[str, Any]] = []
    try:
        upgrade(db_url)
        key, endpoint_id, since = asyncio.run(setup(db_url, target.url, normal.url, args.events))
        env = {**os.environ, "TOFFEEPAY_DATABASE_URL": db_url, "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}
        worker = start_process(["worker"], env, tmp / f"replay-worker-{engine}.log")
        try:
            time.sleep(1)
            normal_traffic(db_url, key, normal, argparse.Namespace(rate=args.rate, duration=2))  # warm-up
            results.append({"scenario": "normal_alone", "engine": engine, **normal_traffic(db_url, key, normal, args)})
            target.reset()
            started = time.time()
            replayed = asyncio.run(replay(db_url, key, endpoint_id, since))
            beside: dict[str, float] = {}
            thread = threading.Thread(target=lambda: beside.update(normal_traffic(db_url, key, normal, args)))
            thread.start()
            got = target.wait(replayed, timeout=args.timeout)
            thread.join()
            last = max(a for a, _ in got)
            results.append(
                {
                    "scenario": "replay",
                    "engine": engine,
                    "events": replayed,
                    "seconds": round(last - started, 1),
                    "deliveries_per_s": round(replayed / (last - started), 1),
                }
            )
            results.append({"scenario": "normal_beside", "engine": engine, **beside})
        finally:
            stop_process(worker)
    finally:
        drop()
        target.stop()
        normal.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--events", type=int, default=100_000, help="old events replayed to one endpoint")
    parser.add_argument("--rate", type=float, default=20.0, help="normal sessions per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of normal traffic per measurement")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the replay")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="toffeepay-bench-") as tmp:
        for engine in args.engines.split(","):
            results.extend(run_engine(engine, args, Path(tmp)))
    for r in results:
        if r["scenario"] == "normal_beside":
            base = next(b for b in results if b["engine"] == r["engine"] and b["scenario"] == "normal_alone")
            r["p99_vs_alone"] = round(r["p99_ms"] / base["p99_ms"], 2)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"webhook-replay-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    load = {"start": load_at_start, "end": os.getloadavg()}
    out.write_text(json.dumps({"load_average": load, "args": vars(args), "results": results}, indent=2))
    print("| engine | scenario | events | deliveries/s | p50 ms | p99 ms | p99 vs alone |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['engine']} | {r['scenario']} | {r.get('events', '')} | {r.get('deliveries_per_s', '')} "
            f"| {r.get('p50_ms', '')} | {r.get('p99_ms', '')} | {r.get('p99_vs_alone', '')} |"
        )
    print(f"\nload average: start {load['start'][0]:.1f}, end {load['end'][0]:.1f} ({os.cpu_count()} CPUs)")
    print(f"results: {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
