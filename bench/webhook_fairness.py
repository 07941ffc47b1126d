"""Fair delivery benchmark: a fast game's webhook latency alone, and beside a slow game.

One `toffeepay worker` dispatches for two games of one database. The fast game has one
sandbox endpoint that answers at once; the slow game has 16 endpoints that answer after
`--slow-seconds` (5 s by default), more than the dispatcher can keep in flight. Both
receivers run in their own processes (asyncio, so held answers cost nothing).

  alone        the fast game's sessions at `--rate` per second for `--duration` seconds
  beside_slow  the same, while the slow game creates sessions at `--slow-rate` per second
               (16 deliveries each, all slow)

Latency is arrival time at the receiver minus the event's `timestamp`. The aim: the fast
game's p50 and p99 beside the slow game within 1.2x + 20 ms of the same run's `alone`.

    python bench/webhook_fairness.py                  # both engines, about a minute each
    python bench/webhook_fairness.py --engines sqlite --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from webhooks import (
    RESULTS,
    ReceiverProcess,
    latency_summary,
    make_database,
    produce,
    start_process,
    stop_process,
)

HERE = Path(__file__).resolve().parent


class _SlowReceiver(asyncio.Protocol):
    """Answers every POST after a delay without blocking others; counts the requests held."""

    delay: ClassVar[float] = 5.0
    arrived: ClassVar[int] = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            path = head.split(b" ")[1]
            if path == b"/stats":
                self._reply(json.dumps({"arrived": _SlowReceiver.arrived}).encode())
            else:
                _SlowReceiver.arrived += 1
                asyncio.get_running_loop().call_later(_SlowReceiver.delay, self._reply, b"ok")

    def _reply(self, body: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


async def _serve_slow(port: int, delay: float) -> None:
    _SlowReceiver.delay = delay
    server = await asyncio.get_running_loop().create_server(_SlowReceiver, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


class SlowReceiverProcess(ReceiverProcess):
    def __init__(self, delay: float) -> None:
        import subprocess

        from webhooks import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--slow-receiver", str(self.port), str(delay)])
        time.sleep(0.5)

    def arrivals_held(self) -> int:
        """Requests the slow endpoints received (each answered only after the delay)."""
        import httpx

        return int(httpx.post(f"{self.url}/stats", content=b"", timeout=30).json()["arrived"])


async def setup(db_url: str, fast_url: str, slow_url: str) -> tuple[str, str]:
    """The fast game (one endpoint) and the slow game (16); returns both sandbox keys."""
    from toffeepay_server.domain.keys import Mode
    from toffeepay_server.services import games, webhooks
    from toffeepay_server.services.context import ServiceContext
    from toffeepay_server.store.database import Database

    ctx = ServiceContext(db=Database(db_url), public_url="http://127.0.0.1", private_webhook_targets="sandbox")
    try:
        fast = await games.create_game(ctx, "fast_game")
        await webhooks.create_endpoint(ctx, game_id="fast_game", mode=Mode.SANDBOX, url=f"{fast_url}/hook")
        slow = await games.create_game(ctx, "slow_game")
        for i in range(16):
            await webhooks.create_endpoint(ctx, game_id="slow_game", mode=Mode.SANDBOX, url=f"{slow_url}/slow/{i}")
        return fast.sandbox_api_key, slow.sandbox_api_key
    finally:
        await ctx.db.dispose()


def measure(db_url: str, fast_key: str, receiver: ReceiverProcess, args: argparse.Namespace) -> dict[str, float]:
    receiver.reset()
    count = int(args.rate * args.duration)
    asyncio.run(produce(db_url, fast_key, count, args.rate))
    return latency_summary([lat for _, lat in receiver.wait(count)])


def run_engine(engine: str, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    from toffeepay_server.store.migrate import upgrade

    fast = ReceiverProcess()
    slow = SlowReceiverProcess(args.slow_seconds)
    db_url, drop = make_database(engine, tmp)
    results = []
    try:
        upgrade(db_url)
        fast_key, slow_key = asyncio.run(setup(db_url, fast.url, slow.url))
        env = {**os.environ, "TOFFEEPAY_DATABASE_URL": db_url, "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}
        worker = start_process(["worker"], env, tmp / f"fairness-worker-{engine}.log")
        try:
            time.sleep(1)
            measure(db_url, fast_key, fast, argparse.Namespace(rate=args.rate, duration=2))  # warm-up, not counted
            alone = measure(db_url, fast_key, fast, args)
            results.append({"scenario": "alone", "engine": engine, **alone})
            # The slow game creates sessions throughout the measurement, from its own thread.
            stop = threading.Event()

            def slow_traffic() -> None:
                while not stop.is_set():
                    asyncio.run(produce(db_url, slow_key, max(1, int(args.slow_rate)), args.slow_rate))

            thread = threading.Thread(target=slow_traffic, daemon=True)
            thread.start()
            time.sleep(2)  # let the slow game fill its share first
            try:
                beside = measure(db_url, fast_key, fast, args)
            finally:
                stop.set()
                thread.join(30)
            held = slow.arrivals_held()
            results.append({"scenario": "beside_slow", "engine": engine, "slow_requests_sent": held, **beside})
        finally:
            stop_process(worker)
    finally:
        drop()
        fast.stop()
        slow.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow-receiver", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--rate", type=float, default=50.0, help="fast game's sessions per second")
    parser.add_argument("--slow-rate", type=float, default=10.0, help="slow game's sessions per second")
    parser.add_argument("--slow-seconds", type=float, default=5.0, help="how long the slow endpoints take to answer")
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    if args.slow_receiver:
        asyncio.run(_serve_slow(int(args.slow_receiver[0]), float(args.slow_receiver[1])))
        return
    load_at_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="toffeepay-bench-") as tmp:
        for engine in args.engines.split(","):
            results.extend(run_engine(engine, args, Path(tmp)))
    for r in results:
        if r["scenario"] == "beside_slow":
            base = next(b for b in results if b["engine"] == r["engine"] and b["scenario"] == "alone")
            for q in ("p50_ms", "p99_ms"):
                r[f"{q}_vs_alone"] = round(r[q] / base[q], 2)
                r[f"{q}_within_aim"] = r[q] <= 1.2 * base[q] + 20
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"webhook-fairness-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    load = {"start": load_at_start, "end": os.getloadavg()}
    out.write_text(json.dumps({"load_average": load, "args": vars(args), "results": results}, indent=2))
    print("| engine | scenario | p50 ms | p99 ms | max ms | p50 vs alone | p99 vs alone | within aim |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        aim = "" if r["scenario"] == "alone" else str(r["p50_ms_within_aim"] and r["p99_ms_within_aim"])
        print(
            f"| {r['engine']} | {r['scenario']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} "
            f"| {r.get('p50_ms_vs_alone', '')} | {r.get('p99_ms_vs_alone', '')} | {aim} |"
        )
    print(f"\nload average: start {load['start'][0]:.1f}, end {load['end'][0]:.1f} ({os.cpu_count()} CPUs)")
    print(f"results: {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
