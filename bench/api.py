"""Sessions API benchmark: wrk against a real `toffeepay serve`, on SQLite and PostgreSQL.

One run creates a temporary SQLite file and a temporary PostgreSQL database, starts the
server on each (127.0.0.1 only), registers a game, and measures at a fixed concurrency:

  health                     the empty Connect RPC `pay.v1.HealthService/Check` (the ceiling)
  create_session             CreateSession (the Getting Started guide's request), on SQLite and on PostgreSQL
  create_session_idempotent  the same with a fresh Idempotency-Key per request (SQLite)
  create_session_api_only    CreateSession on a server without its background loops
                             (TOFFEEPAY_BACKGROUND=0: no webhook fan-out in-process; SQLite)

The load comes from wrk (Debian's /usr/bin/wrk) with the Lua scripts in bench/wrk/, so
nothing of the server's own code is on the client side. Every scenario gets a short
warm-up, then a measured run. Any non-2xx answer or socket error fails the run.

Results go to bench/results/api-<time>.json; a markdown table is printed.

    python bench/api.py                 # everything, under two minutes
    python bench/api.py --duration 5    # quicker, noisier
    python bench/api.py --profile       # and where CreateSession's time goes (py-spy, API-only run)
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
import urllib.request
import uuid
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


SCENARIOS = [
    Scenario("health", "sqlite", "health.lua", False, "empty Connect RPC (ceiling)"),
    Scenario("create_session", "sqlite", "create_session.lua", True, "CreateSession"),
    Scenario(
        "create_session_idempotent", "sqlite", "create_session_idempotent.lua", True, "CreateSession + Idempotency-Key"
    ),
    Scenario(
        "create_session_api_only",
        "sqlite",
        "create_session.lua",
        True,
        "CreateSession, API only (no background loops)",
        background=False,
    ),
    Scenario("create_session", "postgresql", "create_session.lua", True, "CreateSession"),
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
                        return self
            except OSError:
                time.sleep(0.1)
        raise BenchError(f"server did not answer /healthz in 30 s:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of every process of the server's group (granian and its workers)."""
        assert self.proc is not None
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields[2] is pgrp, fields[11..12] utime and stime (stat fields 5, 14, 15).
            if int(fields[2]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

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
    ("SQLite (statements and commit)", ("sqlite_inline.py", "aiosqlite/")),
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


def worker_pids(server_pid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server_pid:
            pids.append(int(stat.parent.name))
    return pids


def summarize_profile(raw: Path) -> dict[str, Any]:
    """py-spy's raw samples of the event-loop thread, as shares of its busy time."""
    shares: dict[str, int] = {}
    busy = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or "MainThread" not in frames[0]:
            continue
        n = int(count)
        leaf = frames[-1]
        if len(frames) == 1 or "EpollSelector.select" in leaf or "epoll" in leaf:
            idle += n  # waiting for I/O (or for the GIL outside any Python frame)
            continue
        # Only the API-only server is profiled: with no background loops, every busy sample
        # serves a request (code inside SQLAlchemy's greenlets is sampled without the
        # coroutines around it, so a stack alone could not tell requests from the dispatcher).
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


def start_profiler(server: Server, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    pids = worker_pids(server.proc.pid) if server.proc else []
    if not Path(py_spy).exists() or not pids:
        print("  (no profile: py-spy is not installed, pip install -e '.[bench]')", file=sys.stderr)
        return None
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pids[0]),
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


def run_scenario(server: Server, scenario: Scenario, key: str, opts: argparse.Namespace) -> dict[str, Any]:
    args = [key, GAME_ID] if scenario.authenticated else []
    conc = {"connections": opts.connections, "threads": opts.threads}
    warm = wrk(server.url, scenario.script, args, seconds=opts.warmup, **conc)
    profiler = None
    raw_profile = (
        RESULTS / f"profile-{scenario.engine}-{scenario.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.txt"
    )
    if opts.profile and scenario.name == "create_session_api_only":
        RESULTS.mkdir(exist_ok=True)
        profiler = start_profiler(server, opts.duration - 1, raw_profile)
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    result = wrk(server.url, scenario.script, args, seconds=opts.duration, **conc)
    cpu = server.cpu_seconds() - cpu_before
    wall = time.monotonic() - wall_before
    lat = result["latency_us"]
    row = {
        "scenario": scenario.name,
        "engine": scenario.engine,
        "description": scenario.description,
        "requests": result["requests"],
        "rps": result["rps"],
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "server_cpu_cores": cpu / wall,
        "server_cpu_ms_per_request": 1000 * cpu / max(result["requests"], 1),
        "non2xx": result["non2xx"] + warm["non2xx"],
        "socket_errors": {k: v for k, v in result["errors"].items() if k != "status"},
        "first_error": result["first_error"] or warm["first_error"],
        "wrk": result,
    }
    if profiler is not None:
        profiler.wait(timeout=60)
        if raw_profile.exists():
            row["profile"] = {"raw": str(raw_profile.relative_to(ROOT)), **summarize_profile(raw_profile)}
    print(
        f"  {scenario.engine:<10} {scenario.name:<26} {row['rps']:>8.0f} req/s"
        f"  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
        f"  server CPU {row['server_cpu_cores']:.2f} cores, {row['server_cpu_ms_per_request']:.3f} ms/request",
        flush=True,
    )
    if "profile" in row:
        print(f"    event-loop thread busy {100 * row['profile']['busy_share']:.0f}% of samples; of that:")
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
    return problems


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
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scenario")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (toffeepay serve --workers)")
    parser.add_argument(
        "--only",
        choices=sorted({s.name for s in SCENARIOS}),
        action="append",
        help="run only these scenarios (health always runs)",
    )
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append", help="run only these engines")
    parser.add_argument(
        "--profile", action="store_true", help="sample the API-only server with py-spy during its CreateSession run"
    )
    opts = parser.parse_args()
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
        f"server: {opts.workers} worker(s)",
        flush=True,
    )
    try:
        for engine, background in (("sqlite", True), ("sqlite", False), ("postgresql", True)):
            todo = [s for s in scenarios if s.engine == engine and s.background == background]
            if not todo:
                continue
            pg_name = None
            if engine == "sqlite":
                # A fresh file per server, so every run starts from the same empty database.
                db_url = f"sqlite:///{workdir / f'bench-{len(rows)}.db'}"
            else:
                pg_name = f"toffeepay_bench_{uuid.uuid4().hex[:10]}"
                pg_admin(f'CREATE DATABASE "{pg_name}"')
                db_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{pg_name}"
            server = Server(db_url, workdir, opts.workers, background=background)
            try:
                key = server.create_game()
                server.start()
                for scenario in todo:
                    rows.append(run_scenario(server, scenario, key, opts))
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
            "profiled": opts.profile,
        },
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "ceiling_rps": ceiling,
        "scenarios": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(started))}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(markdown(rows, ceiling))
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
