"""Webhook delivery benchmark: one dispatcher process against a local receiver, both engines.

Measured in one run, against the same receiver (a small asyncio HTTP/1.1 server in its own
process that notes when each request arrives):

  ceiling           a raw POST loop (aiohttp, the dispatcher's client, keep-alive, 16 in
                    flight, bodies signed as the dispatcher signs them): the most this client
                    stack and receiver can do; with --httpx-ceiling the same loop with httpx too
                    (the client before), for the absolute numbers
  ceiling_paced     the same loop paced at the target rate (--rate, default 500/s): request
                    latency
  worker_drain      N events committed while no dispatcher runs, then one `toffeepay worker`
                    starts: deliveries per second from its first to its last arrival, and the
                    worker's CPU time per delivery meanwhile (from /proc)
  worker_paced      events committed at the target rate (sessions created through the
                    services, one transaction each, in this process) while the worker runs:
                    latency from the event's creation (just before its commit) to its arrival
  serve_paced       CreateSession over HTTP (wrk, paced) at the target rate to `toffeepay serve`,
                    whose own dispatcher is woken in-process by each commit: same latency

Latency is arrival time minus the event's `timestamp` (set inside the transaction, before
the commit), so it overstates commit-to-arrival by however long the producer took to commit
(on a busy machine, tens of milliseconds); worker_paced also reports arrival minus the time
the producer's create_session returned, after its commit (`after_return`), which understates it.

    python bench/webhooks.py                       # both engines, about two minutes
    python bench/webhooks.py --engines sqlite --events 2000 --duration 5
    python bench/webhooks.py --rate 300 --profile bench/results   # py-spy of the draining worker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx

from toffeepay_server.domain.clock import system_clock
from toffeepay_server.processors.sandbox.adapter import SandboxProcessor
from toffeepay_server.services.processor import Processors

PROCESSORS = Processors(SandboxProcessor(system_clock, settle_after=0))

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PG_ADMIN_URL = os.environ.get("TOFFEEPAY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CONCURRENCY = 16  # the dispatcher's default per-endpoint limit


# The receiver (runs in its own process: `python bench/webhooks.py --receiver PORT`)


class _Receiver(asyncio.Protocol):
    """Just enough HTTP/1.1: keep-alive, Content-Length bodies, GET /stats and /reset."""

    arrivals: ClassVar[list[tuple[float, float, str]]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            lines = head.split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            self.answer(lines[0].split(b" ")[1], body)

    def answer(self, path: bytes, body: bytes) -> None:
        reply = b"ok"
        if path == b"/stats":
            reply = json.dumps(self.arrivals).encode()
        elif path == b"/reset":
            _Receiver.arrivals = []
        else:
            now = time.time()
            event = json.loads(body)
            sent = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
            _Receiver.arrivals.append((now, now - sent, event["data"].get("session_id", "")))
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))


async def _serve_receiver(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Receiver, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# Helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies]
    return {
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


class ReceiverProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(self.port)])
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{self.url}/reset", timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def reset(self) -> None:
        httpx.post(f"{self.url}/reset", content=b"", timeout=5)

    def arrivals(self) -> list[tuple[float, float, str]]:
        return [tuple(a) for a in httpx.post(f"{self.url}/stats", content=b"", timeout=30).json()]

    def wait(self, count: int, timeout: float = 120) -> list[tuple[float, float, str]]:
        deadline = time.monotonic() + timeout
        while len(got := self.arrivals()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(got)} of {count} arrived")
            time.sleep(0.2)
        return got

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def make_database(engine: str, tmp: Path) -> tuple[str, Any]:
    if engine == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    import asyncpg

    name = f"toffeepay_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", lambda: asyncio.run(
        admin(f'DROP DATABASE "{name}" WITH (FORCE)')
    )


async def setup(db_url: str, receiver_url: str) -> tuple[str, str]:
    """A game with one sandbox endpoint at the receiver; returns the game id and its sandbox key."""
    from toffeepay_server.domain.keys import Mode
    from toffeepay_server.services import games, webhooks
    from toffeepay_server.services.context import ServiceContext
    from toffeepay_server.store.database import Database

    ctx = ServiceContext(db=Database(db_url), public_url="http://127.0.0.1", private_webhook_targets="sandbox")
    try:
        game = await games.create_game(ctx, "bench_game")
        await webhooks.create_endpoint(ctx, game_id=game.game_id, mode=Mode.SANDBOX, url=f"{receiver_url}/hook")
        return game.game_id, game.sandbox_api_key
    finally:
        await ctx.db.dispose()


async def produce(
    db_url: str, key: str, count: int, rate: float | None, returned: dict[str, float] | None = None
) -> float:
    """Create `count` sessions through the services (one transaction and one event each),
    at `rate` per second or as fast as possible; returns the achieved rate, and notes in
    `returned` when each session's creation returned (after its commit)."""
    from toffeepay_server.domain.sessions import new_session
    from toffeepay_server.services import games, sessions
    from toffeepay_server.services.context import ServiceContext
    from toffeepay_server.store.database import Database

    ctx = ServiceContext(db=Database(db_url), public_url="http://127.0.0.1")
    principal = await games.authenticate(ctx, key)
    assert principal is not None
    limit = asyncio.Semaphore(32)

    async def one() -> None:
        async with limit:
            new = new_session(
                game_id=principal.game_id,
                user_id="player_42",
                title="50 Gold Coins",
                price=499,
                currency="USD",
                image=None,
                return_url=None,
                metadata={},
                expires_at=None,
                live=False,
                now=ctx.clock(),
            )
            created = await sessions.create_session(ctx, principal, new, processors=PROCESSORS)
            if returned is not None:
                returned[created.id] = time.time()

    try:
        started = time.perf_counter()
        tasks = []
        for i in range(count):
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            elif i % 32 == 0:
                await asyncio.sleep(0)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        return count / (time.perf_counter() - started)
    finally:
        await ctx.db.dispose()


# CreateSession (the Getting Started guide's request) from wrk; each of the connections waits `delay` ms
# between requests, so the rate is about connections * 1000 / (delay + latency).
WRK_SCRIPT = """
local req
function init(args)
   local body = '{"game_id":"' .. args[2] .. '","user_id":"player_42",' ..
      '"item":{"title":"50 Gold Coins","price":499,"currency":"USD"}}'
   req = wrk.format("POST", "/pay.v1.PaymentService/CreateSession",
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1]}, body)
end
function request() return req end
function delay() return tonumber(os.getenv("WRK_DELAY_MS")) end
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("REQUESTS %d ERRORS %d\\n", summary.requests,
      e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def produce_wrk(base_url: str, game_id: str, key: str, rate: float, duration: float, tmp: Path) -> tuple[int, float]:
    """CreateSession over HTTP at about `rate` per second; returns the requests made and the rate."""
    connections = 10
    script = tmp / "create_session_paced.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "WRK_DELAY_MS": str(max(1, round(connections * 1000 / rate)))}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "-s", str(script), base_url, "--", key, game_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests, errors = (int(v) for v in out.split("REQUESTS", 1)[1].split()[::2][:2])
    if errors:
        raise RuntimeError(f"wrk saw {errors} errors:\n{out}")
    return requests, requests / duration


def _raw_request(secret: str) -> tuple[bytes, dict[str, str]]:
    from toffeepay_server.events.signing import json_headers

    event_id = str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = json.dumps(
        {
            "id": event_id,
            "event": "session.created",
            "timestamp": stamp,
            "mode": "sandbox",
            "data": {"session_id": "sess_x", "status": "pending"},
        },
        separators=(",", ":"),
    ).encode()
    return body, json_headers(event_id, "session.created", body, int(time.time()), [secret])


async def raw_posts(url: str, count: int, rate: float | None, client: str = "aiohttp") -> tuple[float, float]:
    """The ceiling: signed POSTs straight to the receiver, 16 in flight; returns the rate and
    the CPU milliseconds per POST."""
    import aiohttp

    from toffeepay_server.domain.webhooks import new_secret

    secret = new_secret()
    limit = asyncio.Semaphore(CONCURRENCY)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))
    httpx_client = httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY), timeout=10)

    async def one() -> None:
        async with limit:
            body, headers = _raw_request(secret)
            if client == "httpx":
                response = await httpx_client.post(f"{url}/raw", content=body, headers=headers)
                response.raise_for_status()
                return
            async with session.post(f"{url}/raw", data=body, headers=headers) as answer:
                await answer.read()
                answer.raise_for_status()

    try:
        started, cpu = time.perf_counter(), time.process_time()
        tasks = []
        for i in range(count):
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            elif i % CONCURRENCY == 0:
                await asyncio.sleep(0)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        return count / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / count
    finally:
        await session.close()
        await httpx_client.aclose()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "toffeepay_server", *args], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def run_engine(engine: str, receiver: ReceiverProcess, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    from toffeepay_server.store.migrate import upgrade

    results: list[dict[str, Any]] = []
    db_url, drop = make_database(engine, tmp)
    try:
        upgrade(db_url)
        game_id, key = asyncio.run(setup(db_url, receiver.url))
        env = {**os.environ, "TOFFEEPAY_DATABASE_URL": db_url, "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox"}

        # Drain: a backlog committed with no dispatcher running, then one worker.
        receiver.reset()
        asyncio.run(produce(db_url, key, args.events, None))
        worker = start_process(["worker"], env, tmp / f"worker-{engine}.log")
        profiler = None
        try:
            # CPU per delivery from the first arrivals on (the start-up's imports not counted).
            while not (early := receiver.arrivals()):
                time.sleep(0.02)
            early_cpu = cpu_seconds(worker.pid)
            if args.profile:
                profile = Path(args.profile) / f"worker-drain-{engine}-{datetime.now().strftime('%H%M%S')}.txt"
                profiler = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(worker.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "250",
                        "--output",
                        str(profile),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            got = receiver.wait(args.events)
            cpu = cpu_seconds(worker.pid) - early_cpu
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(30)
            first, last = min(a[0] for a in got), max(a[0] for a in got)
            results.append(
                {
                    "scenario": "worker_drain",
                    "engine": engine,
                    "events": args.events,
                    "deliveries_per_s": round(args.events / (last - first), 1),
                    "cpu_ms_per_delivery": round(cpu * 1000 / max(1, args.events - len(early)), 2),
                }
            )

            # A steady rate with the worker running.
            receiver.reset()
            count = int(args.rate * args.duration)
            returned: dict[str, float] = {}
            achieved = asyncio.run(produce(db_url, key, count, args.rate, returned))
            got = receiver.wait(count)
            after = latency_summary([at - returned[sid] for at, _, sid in got if sid in returned])
            results.append(
                {
                    "scenario": "worker_paced",
                    "engine": engine,
                    "events": count,
                    "rate": round(achieved, 1),
                    **latency_summary([lat for _, lat, _ in got]),
                    "after_return_p50_ms": after["p50_ms"],
                    "after_return_p99_ms": after["p99_ms"],
                }
            )
        finally:
            stop_process(worker)

        # The same rate through `toffeepay serve`, API and dispatcher in one process.
        port = free_port()
        serve = start_process(["serve", "--port", str(port)], env, tmp / f"serve-{engine}.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base)
            receiver.reset()
            count, achieved = produce_wrk(base, game_id, key, args.rate, args.duration, tmp)
            got = receiver.wait(count)
            results.append(
                {
                    "scenario": "serve_paced",
                    "engine": engine,
                    "events": count,
                    "rate": round(achieved, 1),
                    **latency_summary([lat for _, lat, _ in got]),
                }
            )
        finally:
            stop_process(serve)
    finally:
        drop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--events", type=int, default=5000, help="backlog size for worker_drain and ceiling")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second for the *_paced scenarios")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load at the target rate")
    parser.add_argument("--httpx-ceiling", action="store_true", help="also measure the raw loop with httpx")
    parser.add_argument("--profile", metavar="DIR", help="py-spy (raw stacks) of the worker while it drains")
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_serve_receiver(args.receiver))
        return

    load_at_start = os.getloadavg()
    receiver = ReceiverProcess()
    results: list[dict[str, Any]] = []
    try:
        for client in ["aiohttp", *(["httpx"] if args.httpx_ceiling else [])]:
            receiver.reset()
            achieved, cpu_ms = asyncio.run(raw_posts(receiver.url, args.events, None, client))
            receiver.wait(args.events)
            results.append(
                {
                    "scenario": "ceiling" if client == "aiohttp" else "ceiling_httpx",
                    "engine": "-",
                    "events": args.events,
                    "deliveries_per_s": round(achieved, 1),
                    "cpu_ms_per_delivery": round(cpu_ms, 2),
                }
            )
        receiver.reset()
        count = int(args.rate * args.duration)
        achieved, _ = asyncio.run(raw_posts(receiver.url, count, args.rate))
        got = receiver.wait(count)
        results.append(
            {
                "scenario": "ceiling_paced",
                "engine": "-",
                "events": count,
                "rate": round(achieved, 1),
                **latency_summary([lat for _, lat, _ in got]),
            }
        )
        with tempfile.TemporaryDirectory(prefix="toffeepay-bench-") as tmp:
            for engine in args.engines.split(","):
                results.extend(run_engine(engine, receiver, args, Path(tmp)))
    finally:
        receiver.stop()

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"webhooks-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    ceiling = results[0]["deliveries_per_s"]
    for r in results:
        if "deliveries_per_s" in r:
            r["vs_ceiling"] = round(r["deliveries_per_s"] / ceiling, 2)
    load = {"start": load_at_start, "end": os.getloadavg()}
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "load_average": load,
                "args": vars(args),
                "results": results,
            },
            indent=2,
        )
    )
    print(
        "| scenario | engine | events | deliveries/s | vs ceiling | CPU ms/delivery | rate/s | p50 ms | p99 ms "
        "| max ms |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['scenario']} | {r['engine']} | {r['events']} | {r.get('deliveries_per_s', '')} "
            f"| {r.get('vs_ceiling', '')} | {r.get('cpu_ms_per_delivery', '')} | {r.get('rate', '')} "
            f"| {r.get('p50_ms', '')} | {r.get('p99_ms', '')} | {r.get('max_ms', '')} |"
        )
    for r in results:
        if "after_return_p99_ms" in r:
            print(
                f"{r['scenario']} {r['engine']}: arrival after create_session returned p50 "
                f"{r['after_return_p50_ms']} ms, p99 {r['after_return_p99_ms']} ms"
            )
    print(f"\nload average: start {load['start'][0]:.1f}, end {load['end'][0]:.1f} ({os.cpu_count()} CPUs)")
    print(f"\nresults: {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
