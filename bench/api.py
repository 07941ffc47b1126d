"""Sessions API benchmark: wrk against a real `toffeepay serve`, on SQLite and PostgreSQL.

One run creates a temporary SQLite file and temporary PostgreSQL databases, starts the
server on each (127.0.0.1 only), registers a game, and measures at a fixed concurrency:

  health                     the empty Connect RPC `pay.v1.HealthService/Check` (the ceiling)
  get_session_status         GetSessionStatus, rotating over 16 sessions created before the run
                             (the call games poll when the player returns), on SQLite and on PostgreSQL
  get_session                GetSession, the same way (SQLite)
  create_session             CreateSession (the Getting Started guide's request), on SQLite and on PostgreSQL
  create_session_idempotent  the same with a fresh Idempotency-Key per request (SQLite and PostgreSQL)
  pay_session                CreateSession then the sandbox PaySession on that session, in pairs (SQLite and PostgreSQL)
                             (PaySession needs a fresh pending session each time)
  create_session_api_only    CreateSession on a server without its background loops
                             (TOFFEEPAY_BACKGROUND=0: no webhook fan-out in-process), on SQLite and on PostgreSQL
  create_session_scale       CreateSession on PostgreSQL with 1 worker, then with 2 workers, each
                             server on a fresh database of its own (scale-out: workers 2 / workers 1)

The load comes from wrk (Debian's /usr/bin/wrk) with the Lua scripts in bench/wrk/, so
nothing of the server's own code is on the client side (the sessions read back are created
with plain HTTP JSON calls). Every scenario gets a short warm-up, then a measured run. Any
non-2xx answer or socket error fails the run. The server runs with --workers (default 1)
except where a scenario sets its own.

Results go to bench/results/api-<time>.json; a markdown table is printed, then each speed
aim against what was measured (an aim not met does not fail the run).

    python bench/api.py                         # everything, about three minutes
    python bench/api.py --quick                 # 1 s warm-up + 3 s per scenario, noisier
    python bench/api.py --quick --engine sqlite --only get_session_status
    python bench/api.py --profile create_session --profile get_session_status   # py-spy, per scenario
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WRK_DIR = HERE / "wrk"
RESULTS = HERE / "results"
GAME_ID = "bench_game"
PG_ADMIN_URL = os.environ.get("TOFFEEPAY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    engine: str
    script: str
    authenticated: bool
    description: str
    # False: the server runs without its background loops (TOFFEEPAY_BACKGROUND=0), as an
    # API process does when the dispatcher and sweeper run in `toffeepay worker`.
    background: bool = True
    # Server worker processes; None: the command line's --workers.
    workers: int | None = None
    # True: a server of its own, on a fresh database (otherwise scenarios share a server).
    own_server: bool = False
    # Sessions created through the API before the run; their ids follow the key and game id
    # in the script's arguments.
    sessions: int = 0


SESSIONS_READ = 16

# In the order they run. On a shared server the reads come before the writes, so that no
# backlog of webhook fan-outs left by a write scenario runs during a read scenario.
SCENARIOS = [
    Scenario("health", "sqlite", "health.lua", False, "empty Connect RPC (ceiling)"),
    Scenario(
        "get_session_status", "sqlite", "get_session_status.lua", True, "GetSessionStatus", sessions=SESSIONS_READ
    ),
    Scenario("get_session", "sqlite", "get_session.lua", True, "GetSession", sessions=SESSIONS_READ),
    Scenario("create_session", "sqlite", "create_session.lua", True, "CreateSession"),
    Scenario(
        "create_session_idempotent", "sqlite", "create_session_idempotent.lua", True, "CreateSession + Idempotency-Key"
    ),
    Scenario(
        "pay_session",
        "sqlite",
        "create_then_pay.lua",
        True,
        "CreateSession then sandbox PaySession (pairs; req/s counts both calls)",
    ),
    Scenario(
        "create_session_api_only",
        "sqlite",
        "create_session.lua",
        True,
        "CreateSession, API only (no background loops)",
        background=False,
    ),
    Scenario(
        "get_session_status", "postgresql", "get_session_status.lua", True, "GetSessionStatus", sessions=SESSIONS_READ
    ),
    Scenario("create_session", "postgresql", "create_session.lua", True, "CreateSession"),
    Scenario(
        "create_session_idempotent",
        "postgresql",
        "create_session_idempotent.lua",
        True,
        "CreateSession + Idempotency-Key",
    ),
    Scenario(
        "pay_session",
        "postgresql",
        "create_then_pay.lua",
        True,
        "CreateSession then sandbox PaySession (pairs; req/s counts both calls)",
    ),
    Scenario(
        "create_session_api_only",
        "postgresql",
        "create_session.lua",
        True,
        "CreateSession, API only (no background loops)",
        background=False,
    ),
    Scenario(
        "create_session_scale",
        "postgresql",
        "create_session.lua",
        True,
        "CreateSession, 1 worker, own database",
        workers=1,
        own_server=True,
    ),
    Scenario(
        "create_session_scale",
        "postgresql",
        "create_session.lua",
        True,
        "CreateSession, 2 workers, own database",
        workers=2,
        own_server=True,
    ),
]

# The speed aims of the API: (label, numerator row, denominator row or None for the ceiling, aim).
# A row is named by (scenario, engine, workers or None for the command line's --workers).
AIMS: list[tuple[str, tuple[str, str, int | None], tuple[str, str, int | None] | None, float]] = [
    ("CreateSession, SQLite, as shipped: share of the ceiling", ("create_session", "sqlite", None), None, 0.30),
    ("GetSessionStatus, SQLite: share of the ceiling", ("get_session_status", "sqlite", None), None, 0.50),
    ("CreateSession, PostgreSQL: share of the ceiling", ("create_session", "postgresql", None), None, 0.20),
    (
        "CreateSession, PostgreSQL: 2 workers / 1 worker",
        ("create_session_scale", "postgresql", 2),
        ("create_session_scale", "postgresql", 1),
        1.7,
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_admin(sql: str) -> None:
    subprocess.run(
        ["psql", PG_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )


class Server:
    """`toffeepay serve` in its own process group, on 127.0.0.1."""

    def __init__(self, db_url: str, workdir: Path, workers: int, *, background: bool = True) -> None:
        self.db_url = db_url
        self.workdir = workdir
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TOFFEEPAY_DATABASE_URL": db_url,
            "TOFFEEPAY_PUBLIC_URL": self.url,
            "TOFFEEPAY_BACKGROUND": "1" if background else "0",
            # One key sends everything here: keep the per-key limiter in the path, never tripping.
            "TOFFEEPAY_RATE_LIMIT": "1000000/second",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"server-{self.port}.log"

    def toffeepay(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "toffeepay_server", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise BenchError(f"toffeepay {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def create_game(self) -> str:
        return json.loads(self.toffeepay("games", "create", GAME_ID, "--json"))["sandbox_api_key"]

    def create_sessions(self, key: str, count: int) -> list[str]:
        """`count` sessions created with CreateSession as a game server sends it (plain HTTP JSON)."""
        body = json.dumps(
            {
                "game_id": GAME_ID,
                "user_id": "player_42",
                "item": {"title": "50 Gold Coins", "price": 499, "currency": "USD"},
                "return_url": "mygame://payment-complete",
            }
        ).encode()
        ids = []
        for _ in range(count):
            request = urllib.request.Request(
                f"{self.url}/pay.v1.PaymentService/CreateSession",
                data=body,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    ids.append(json.loads(answer.read())["id"])
            except (OSError, KeyError, ValueError) as exc:
                detail = exc.read().decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else ""
                raise BenchError(f"CreateSession before the run failed: {exc} {detail}") from exc
        return ids

    def start(self) -> Server:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "toffeepay_server",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        self.wait_for_workers()
                        return self
            except OSError:
                time.sleep(0.1)
        raise BenchError(f"server did not answer /healthz in 30 s:\n{self.log.read_text()[-3000:]}")

    def wait_for_workers(self) -> None:
        """With several workers, /healthz answers as soon as one is up: wait for the others too.

        A load started before then queues connections on workers still importing the app, and
        the run measures their start-up (granian logs `Started worker-N` when one is ready).
        """
        if self.workers < 2:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = self.log.read_text(errors="replace")
            if all(f"Started worker-{i}" in log for i in range(1, self.workers + 1)):
                return
            time.sleep(0.2)
        print(
            f"  (not every one of the {self.workers} workers said it started in 60 s; measuring anyway)",
            file=sys.stderr,
        )

    def cpu_seconds(self) -> float:
        """User + system CPU of every process of the server's group (granian and its workers)."""
        assert self.proc is not None
        # fields[2] is the process group (stat field 5).
        return sum(cpu_of(fields) for _, _, fields in processes() if int(fields[2]) == self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def wrk(url: str, script: str, args: list[str], *, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        script,
        url,
        "--",
        *args,
    ]
    out = subprocess.run(cmd, cwd=WRK_DIR, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line.removeprefix("WRK_JSON "))
    raise BenchError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


# Where a sample of the worker's event-loop thread is, by its innermost frame (first match wins).
PROFILE_CATEGORIES = [
    # The sqlite3 calls themselves are made from these modules (a C call has no frame of its own).
    (
        "SQLite (statements and commit)",
        ("sqlite_inline.py", "aiosqlite/", "store/prepared.py", "store/group_commit.py"),
    ),
    ("PostgreSQL driver (asyncpg)", ("asyncpg/",)),
    ("SQLAlchemy Core and its async bridge", ("sqlalchemy/", "greenlet")),
    (
        "HTTP through granian (await receive/send)",
        ("_read_body", "send_with_id", "replay (", "_ResponseSender", "_RequestReceiver"),
    ),
    ("Connect protocol and protobuf JSON", ("connectrpc/", "protobuf/", "api/codecs.py")),
    ("event loop", ("asyncio/", "selectors.py", "granian/")),
    (
        "ToffeePay code (gateway, auth, validation, ids, events)",
        ("toffeepay_server/", "uuid.py", "json/", "typeid/", "limits/", "hashlib"),
    ),
]


def processes() -> Iterator[tuple[int, str, list[str]]]:
    """Every process now: its pid, its command name and the fields of /proc/<pid>/stat after
    the name (fields[1] is the parent's pid, fields[11] and fields[12] utime and stime)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, tail = stat.read_text().rpartition(")")
        except OSError:
            continue  # ended meanwhile
        yield int(stat.parent.name), head.partition(" (")[2], tail.split()


def cpu_of(fields: list[str], *, ended_children: bool = False) -> float:
    """User + system CPU seconds of a process, from its /proc stat fields; with
    `ended_children`, those of its children that ended too (fields[13] and fields[14])."""
    ticks = int(fields[11]) + int(fields[12])
    if ended_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def worker_pids(server_pid: int) -> list[int]:
    return [pid for pid, _, fields in processes() if int(fields[1]) == server_pid]


def summarize_profile(raws: list[Path]) -> dict[str, Any]:
    """py-spy's raw samples of the workers' event-loop threads, as shares of their busy time."""
    shares: dict[str, int] = {}
    busy = idle = 0
    lines = [line for raw in raws if raw.exists() for line in raw.read_text().splitlines()]
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or "MainThread" not in frames[0]:
            continue
        n = int(count)
        leaf = frames[-1]
        if len(frames) == 1 or "EpollSelector.select" in leaf or "epoll" in leaf:
            idle += n  # waiting for I/O (or for the GIL outside any Python frame)
            continue
        # On a server without background loops every busy sample serves a request; with them,
        # the dispatcher's and sweeper's work is counted too (code inside SQLAlchemy's greenlets
        # is sampled without the coroutines around it, so a stack alone cannot tell them apart).
        category = next(
            (name for name, marks in PROFILE_CATEGORIES if any(m in leaf for m in marks)),
            "Python runtime (context managers, enums, dataclasses)",
        )
        busy += n
        shares[category] = shares.get(category, 0) + n
    ordered = sorted(shares.items(), key=lambda kv: -kv[1])
    return {
        "samples": busy + idle,
        "busy_share": busy / max(busy + idle, 1),
        "shares": {name: n / max(busy, 1) for name, n in ordered},
    }


def start_profilers(server: Server, seconds: float, out: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """One py-spy per worker process of the server, each writing `<out>-<pid>.txt`."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("  (no profile: py-spy is not installed, pip install -e '.[bench]')", file=sys.stderr)
        return []
    pids = worker_pids(server.proc.pid) if server.proc else []
    if not pids:
        print("  (no profile: no worker process found)", file=sys.stderr)
        return []
    return [(_py_spy(py_spy, pid, seconds, RESULTS / f"{out}-{pid}.txt"), RESULTS / f"{out}-{pid}.txt") for pid in pids]


def _py_spy(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "250",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def postgres_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL process on this machine (the backends serving the run)."""
    # Backends end (with their connections) during a run: their time counts in the postmaster's.
    return sum(cpu_of(fields, ended_children=True) for _, name, fields in processes() if name == "postgres")


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling and waiting for the disk (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / CLK_TCK


def run_scenario(
    server: Server, scenario: Scenario, key: str, session_ids: list[str], opts: argparse.Namespace
) -> dict[str, Any]:
    args = [key, GAME_ID, *session_ids] if scenario.authenticated else []
    conc = {"connections": opts.connections, "threads": opts.threads}
    # Each worker process fills its own caches (compiled statements, pool connections, CLDR
    # currency data on its first CreateSession): warm up each one as long as a single worker.
    warm = wrk(server.url, scenario.script, args, seconds=opts.warmup * server.workers, **conc)
    profilers = []
    if scenario.name in (opts.profile or ()):
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        out = f"profile-{scenario.engine}-{scenario.name}-w{server.workers}-{stamp}"
        profilers = start_profilers(server, max(1.0, opts.duration - 1), out)
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    pg_before, busy_before = postgres_cpu_seconds(), machine_busy_seconds()
    result = wrk(server.url, scenario.script, args, seconds=opts.duration, **conc)
    cpu = server.cpu_seconds() - cpu_before
    pg_cpu, busy = postgres_cpu_seconds() - pg_before, machine_busy_seconds() - busy_before
    wall = time.monotonic() - wall_before
    lat = result["latency_us"]
    row = {
        "scenario": scenario.name,
        "engine": scenario.engine,
        "workers": server.workers,
        "background": scenario.background,
        "description": scenario.description,
        "requests": result["requests"],
        "rps": result["rps"],
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "server_cpu_cores": cpu / wall,
        "server_cpu_ms_per_request": 1000 * cpu / max(result["requests"], 1),
        # Where the rest of the machine went: PostgreSQL's processes, and every core's busy time
        # (wrk and anything else running included).
        "postgres_cpu_cores": pg_cpu / wall,
        "postgres_cpu_ms_per_request": 1000 * pg_cpu / max(result["requests"], 1),
        "machine_busy_cores": busy / wall,
        "non2xx": result["non2xx"] + warm["non2xx"],
        "socket_errors": {k: v for k, v in result["errors"].items() if k != "status"},
        "first_error": result["first_error"] or warm["first_error"],
        "counters": result.get("counters", {}),
        "wrk": result,
    }
    if "paid" in row["counters"]:
        row["paid_per_s"] = row["counters"]["paid"] / max(result["duration_s"], 1e-9)
    for proc, _ in profilers:
        proc.wait(timeout=60)
    raws = [raw for _, raw in profilers if raw.exists()]
    if raws:
        row["profile"] = {"raw": [str(raw.relative_to(ROOT)) for raw in raws], **summarize_profile(raws)}
    label = scenario.name + (f" w{server.workers}" if scenario.workers else "")
    print(
        f"  {scenario.engine:<10} {label:<26} {row['rps']:>8.0f} req/s"
        f"  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
        f"  server CPU {row['server_cpu_cores']:.2f} cores, {row['server_cpu_ms_per_request']:.3f} ms/request"
        + (
            f"; PostgreSQL {row['postgres_cpu_cores']:.2f} cores, {row['postgres_cpu_ms_per_request']:.3f} ms/request"
            if scenario.engine == "postgresql"
            else ""
        )
        + f"; machine busy {row['machine_busy_cores']:.2f} of {os.cpu_count()} cores",
        flush=True,
    )
    if "paid_per_s" in row:
        print(f"    {row['counters']['paid']} sessions paid, {row['paid_per_s']:.0f} pairs/s")
    if "profile" in row:
        print(
            f"    profile of {len(raws)} worker(s), {row['profile']['samples']} samples; event-loop thread busy"
            f" {100 * row['profile']['busy_share']:.0f}% of samples; of that"
            + ("" if scenario.background else " (no background loops: all requests)")
            + ":"
        )
        for name, share in row["profile"]["shares"].items():
            print(f"    {100 * share:5.1f}%  {name}")
    return row


def check(rows: list[dict[str, Any]]) -> list[str]:
    problems = []
    for row in rows:
        name = f"{row['engine']}/{row['scenario']}"
        if row["non2xx"]:
            problems.append(f"{name}: {row['non2xx']} non-2xx answers, first: {row['first_error']}")
        if any(row["socket_errors"].values()):
            problems.append(f"{name}: socket errors {row['socket_errors']}")
        if row["requests"] == 0:
            problems.append(f"{name}: no request completed")
        if row["counters"].get("paid") == 0:
            problems.append(f"{name}: no session was paid")
    return problems


def find_row(rows: list[dict[str, Any]], key: tuple[str, str, int | None], workers: int) -> dict[str, Any] | None:
    scenario, engine, wanted = key
    return next(
        (
            r
            for r in rows
            if r["scenario"] == scenario and r["engine"] == engine and r["workers"] == (wanted or workers)
        ),
        None,
    )


def aims(rows: list[dict[str, Any]], ceiling: float, workers: int) -> list[dict[str, Any]]:
    """Each aim whose scenarios ran, with the measured ratio and whether it is met."""
    judged = []
    for label, num_key, den_key, aim in AIMS:
        num = find_row(rows, num_key, workers)
        den = find_row(rows, den_key, workers) if den_key else None
        if num is None or (den_key and den is None):
            continue
        measured = num["rps"] / (den["rps"] if den else ceiling)
        judged.append(
            {"aim": label, "measured": measured, "target": aim, "ratio": den is not None, "met": measured >= aim}
        )
    return judged


def format_aims(judged: list[dict[str, Any]]) -> str:
    def show(value: float, ratio: bool) -> str:
        return f"{value:.2f}x" if ratio else f"{100 * value:.1f}%"

    width = max((len(a["aim"]) for a in judged), default=0)
    return "\n".join(
        f"  {a['aim']:<{width}}  {show(a['measured'], a['ratio']):>7}  aim >= {show(a['target'], a['ratio']):<6}"
        f"  {'met' if a['met'] else 'not met'}"
        for a in judged
    )


def scale_budget(rows: list[dict[str, Any]], workers: int) -> str | None:
    """What the scale-out aim asks of this machine: the cores one worker's run kept busy (the
    server, PostgreSQL, the load generator), times the aim, against the cores there are."""
    one = find_row(rows, ("create_session_scale", "postgresql", 1), workers)
    two = find_row(rows, ("create_session_scale", "postgresql", 2), workers)
    if one is None or two is None:
        return None
    aim = next(a for label, _, _, a in AIMS if label.endswith("2 workers / 1 worker"))
    rest = one["machine_busy_cores"] - one["server_cpu_cores"] - one["postgres_cpu_cores"]
    return (
        f"  scale-out budget: 1 worker kept {one['machine_busy_cores']:.2f} cores busy (server"
        f" {one['server_cpu_cores']:.2f}, PostgreSQL {one['postgres_cpu_cores']:.2f}, load generator and the"
        f" rest {rest:.2f}); {aim:g}x of it needs {aim * one['machine_busy_cores']:.2f} of {os.cpu_count()} cores."
        f" 2 workers kept {two['machine_busy_cores']:.2f} busy."
    )


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in (
        "toffeepay-server",
        "granian",
        "starlette",
        "connectrpc",
        "sqlalchemy",
        "aiosqlite",
        "asyncpg",
        "uvloop",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n", 1)[0]
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wrk": wrk_version.strip(),
        "packages": versions,
    }


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except OSError:
        return ""


def markdown(rows: list[dict[str, Any]], ceiling: float) -> str:
    lines = [
        "| scenario | database | req/s | % of ceiling | p50 ms | p99 ms | server CPU ms/req |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['description']} | {'SQLite' if r['engine'] == 'sqlite' else 'PostgreSQL'} "
            f"| {r['rps']:,.0f} | {100 * r['rps'] / ceiling:.0f}% | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['server_cpu_ms_per_request']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per scenario (default 2; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="short warm-up and runs, for iterating (noisier)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server worker processes (toffeepay serve --workers) where a scenario does not set its own",
    )
    parser.add_argument(
        "--only",
        choices=sorted({s.name for s in SCENARIOS}),
        action="append",
        help="run only these scenarios (health always runs)",
    )
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append", help="run only these engines")
    parser.add_argument(
        "--profile",
        choices=sorted({s.name for s in SCENARIOS}),
        nargs="?",
        const="create_session_api_only",
        action="append",
        metavar="SCENARIO",
        help="sample the server's workers with py-spy during this scenario's measured run and print where the"
        " time goes (repeatable; on every engine it runs on; without a name: create_session_api_only)",
    )
    opts = parser.parse_args()
    if opts.duration is None:
        opts.duration = 3.0 if opts.quick else 10.0
    if opts.warmup is None:
        opts.warmup = 1.0 if opts.quick else 2.0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    scenarios = [
        s
        for s in SCENARIOS
        if s.name == "health"
        or ((not opts.only or s.name in opts.only) and (not opts.engine or s.engine in opts.engine))
    ]
    workdir = Path(tempfile.mkdtemp(prefix="toffeepay-bench-"))
    rows: list[dict[str, Any]] = []
    started = time.time()
    load_start = list(os.getloadavg())
    if load_start[0] > (os.cpu_count() or 1):
        print(
            f"note: the machine is busy (load average {load_start[0]:.1f} on {os.cpu_count()} CPUs); "
            "numbers will be low and noisy",
            file=sys.stderr,
        )
    print(
        f"wrk: {opts.threads} threads, {opts.connections} connections, "
        f"{opts.warmup:g} s warm-up + {opts.duration:g} s per scenario; "
        f"server: {opts.workers} worker(s) unless a scenario sets its own",
        flush=True,
    )
    try:
        # Scenarios that can share a server do, in the order of SCENARIOS.
        groups: dict[tuple[str, bool, int, int], list[Scenario]] = {}
        for i, s in enumerate(scenarios):
            group = (s.engine, s.background, s.workers or opts.workers, i if s.own_server else -1)
            groups.setdefault(group, []).append(s)
        for (engine, background, workers, _), todo in groups.items():
            pg_name = None
            if engine == "sqlite":
                # A fresh file per server, so every run starts from the same empty database.
                db_url = f"sqlite:///{workdir / f'bench-{len(rows)}.db'}"
            else:
                pg_name = f"toffeepay_bench_{uuid.uuid4().hex[:10]}"
                pg_admin(f'CREATE DATABASE "{pg_name}"')
                db_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{pg_name}"
            server = Server(db_url, workdir, workers, background=background)
            try:
                key = server.create_game()
                server.start()
                session_ids: list[str] = []
                for scenario in todo:
                    if len(session_ids) < scenario.sessions:
                        session_ids += server.create_sessions(key, scenario.sessions - len(session_ids))
                    ids = session_ids[: scenario.sessions]
                    rows.append(run_scenario(server, scenario, key, ids, opts))
            finally:
                server.stop()
                if pg_name:
                    pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    except (BenchError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"benchmark failed: {exc}\n{detail}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ceiling = next(r["rps"] for r in rows if r["scenario"] == "health")
    for r in rows:
        r["ratio_to_ceiling"] = r["rps"] / ceiling
    report = {
        "benchmark": "sessions-api",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "commit": git_commit(),
        "machine": machine(),
        "config": {
            "connections": opts.connections,
            "threads": opts.threads,
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "server_workers": opts.workers,
            "profiled": sorted(set(opts.profile or ())),
        },
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "ceiling_rps": ceiling,
        "scenarios": rows,
        "aims": aims(rows, ceiling, opts.workers),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(started))}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(markdown(rows, ceiling))
    if report["aims"]:
        print("\nspeed aims (measured in this run; an aim not met does not fail the run):")
        print(format_aims(report["aims"]))
        budget = scale_budget(rows, opts.workers)
        if budget:
            print(budget)
    print(f"\nresults: {out.relative_to(ROOT)} ({report['elapsed_s']} s)")
    problems = check(rows)
    if problems:
        print("\nFAILED: every answer must be 2xx and no socket may fail:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
