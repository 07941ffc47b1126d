"""What the request hardening costs: CreateSession throughput before and after, in one run.

"Before" is the server's source at the commit just before the hardening (the request
guard, the per-field checks, the depth check), run from a copy of that tree with the
same virtualenv; "after" is the working tree. Both serve a fresh SQLite database on
127.0.0.1, one worker each, loaded by wrk with bench/wrk/create_session.lua. The two are
measured in alternation (before, after, before, after, ...) so that a shared machine's
drift falls on both alike, or with `--together` loaded both at the same time (each then
gets its share of the same machine at the same moment, which a busy shared machine
needs). The result is the median of the rounds' after/before ratios, with the server's
CPU time per request beside it (what the hardening adds, whatever else runs).

    python bench/hardening.py                     # 3 rounds of 5 s each, about a minute
    python bench/hardening.py --rounds 5 --duration 10
    python bench/hardening.py --baseline <commit>
    python bench/hardening.py --baseline <commit> --script create_session_idempotent.lua
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from api import GAME_ID, RESULTS, ROOT, BenchError, Server, git_commit, machine, wrk

# The first commit of the hardening: its parent is "before".
FIRST_HARDENING_FILE = "src/toffeepay_server/api/fields.py"


def default_baseline() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", FIRST_HARDENING_FILE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise BenchError(f"no commit adds {FIRST_HARDENING_FILE}; pass --baseline")
    return added[-1] + "^"


def short(commit: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", commit], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def export_tree(commit: str, into: Path) -> Path:
    """The `src/` of `commit` and its SDK (the generated Connect code the server serves),
    extracted under `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "src", "sdk/python/src"], cwd=ROOT, capture_output=True
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {commit} failed: {archive.stderr.decode()}")
    tar_path = into / "src.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def start(workdir: Path, src: Path | None) -> tuple[Server, str]:
    workdir.mkdir(parents=True)
    server = Server(f"sqlite:///{workdir / 'bench.db'}", workdir, workers=1)
    if src is not None:
        # Ahead of the editable installs on sys.path, so the old tree (and its SDK) is the one imported.
        sdk = src.parent / "sdk" / "python" / "src"
        server.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), str(sdk), os.environ.get("PYTHONPATH")]))
    key = server.create_game()
    server.start()
    return server, key


def measure(server: Server, key: str, opts: argparse.Namespace) -> dict[str, Any]:
    conc = {"connections": opts.connections, "threads": opts.threads}
    wrk(server.url, opts.script, [key, GAME_ID], seconds=opts.warmup, **conc)
    cpu_before = server.cpu_seconds()
    result = wrk(server.url, opts.script, [key, GAME_ID], seconds=opts.duration, **conc)
    cpu = server.cpu_seconds() - cpu_before
    if result["non2xx"] or {k: v for k, v in result["errors"].items() if k != "status" and v}:
        raise BenchError(f"errors under load: {result['first_error']} {result['errors']}")
    return {
        "rps": result["rps"],
        "p50_ms": result["latency_us"]["p50"] / 1000,
        "p99_ms": result["latency_us"]["p99"] / 1000,
        # The server's own CPU per request: what the hardening adds, whatever else shares the machine.
        "cpu_ms_per_request": 1000 * cpu / max(result["requests"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="commit of 'before' (default: the parent of the first hardening commit)")
    parser.add_argument("--after", help="commit of 'after' (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--together",
        action="store_true",
        help="load both servers at the same time in each round (each gets half the machine, same noise)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--script",
        default="create_session.lua",
        help="wrk script in bench/wrk/ (create_session_idempotent.lua: with an Idempotency-Key)",
    )
    opts = parser.parse_args()
    baseline = opts.baseline or default_baseline()
    resolved = short(baseline)
    after_name = short(opts.after) if opts.after else f"working tree at {git_commit()}"
    print(f"before: {resolved} (baseline), after: {after_name}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="toffeepay-bench-hardening-") as tmp:
        src = export_tree(baseline, Path(tmp) / "tree-before")
        after_src = export_tree(opts.after, Path(tmp) / "tree-after") if opts.after else None
        servers = {
            "before": start(Path(tmp) / "before", src),
            "after": start(Path(tmp) / "after", after_src),
        }
        try:
            for round_ in range(opts.rounds):
                if opts.together:
                    with ThreadPoolExecutor(2) as pool:
                        futures = {name: pool.submit(measure, *servers[name], opts) for name in servers}
                        rows = {name: future.result() for name, future in futures.items()}
                else:
                    rows = {name: measure(*servers[name], opts) for name in servers}
                for name, row in rows.items():
                    runs[name].append(row)
                    print(
                        f"  round {round_ + 1} {name:<6} {row['rps']:8.0f} req/s"
                        f"  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
                        f"  server CPU {row['cpu_ms_per_request']:.3f} ms/request",
                        flush=True,
                    )
        finally:
            for server, _ in servers.values():
                server.stop()
    before = statistics.median(r["rps"] for r in runs["before"])
    after = statistics.median(r["rps"] for r in runs["after"])
    ratio = after / before
    # Each round's two runs saw the same machine (at once with --together, else one after the other).
    round_ratio = statistics.median(a["rps"] / b["rps"] for a, b in zip(runs["after"], runs["before"], strict=True))
    cpu_before = statistics.median(r["cpu_ms_per_request"] for r in runs["before"])
    cpu_after = statistics.median(r["cpu_ms_per_request"] for r in runs["after"])
    print(f"\nCreateSession, median of {opts.rounds}: before {before:.0f} req/s, after {after:.0f} req/s")
    print(f"after/before = {ratio:.3f} ({100 * (ratio - 1):+.1f}%); median of the rounds' ratios {round_ratio:.3f}")
    print(
        f"server CPU per request: before {cpu_before:.3f} ms, after {cpu_after:.3f} ms"
        f" ({100 * (cpu_after / cpu_before - 1):+.1f}%)"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hardening-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.write_text(
        json.dumps(
            {
                "baseline": resolved,
                "after": after_name,
                "commit": git_commit(),
                "options": vars(opts),
                "machine": machine(),
                "runs": runs,
                "median_rps": {"before": before, "after": after},
                "median_cpu_ms_per_request": {"before": cpu_before, "after": cpu_after},
                "ratio": ratio,
                "median_round_ratio": round_ratio,
            },
            indent=2,
        )
    )
    print(f"results: {out.relative_to(ROOT)}")
    if round_ratio < 0.95:
        sys.exit(f"CreateSession throughput dropped by {100 * (1 - round_ratio):.1f}% (more than 5%)")


if __name__ == "__main__":
    main()
