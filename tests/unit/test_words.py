"""What studios and maintainers read names only what they can open: nothing outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Documents that are not in the repository: the product's source documents by number, the
# server's specification by section.
OUTSIDE = re.compile(r"\bseeds?\b(?! ?=)|\bseed[-_ ]?0\d\d|CONTRACT(\.md| section)", re.IGNORECASE)
READ_BY_PEOPLE = [
    "README.md",
    "docs",
    "src/toffeepay_server",
    "sdk/python/src/toffeepay",
    "sdk/python/examples",
    "proto",
]


def _texts() -> list[Path]:
    found: list[Path] = []
    for name in READ_BY_PEOPLE:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        found += [p for p in files if p.suffix in {".md", ".py", ".html", ".proto", ".js", ".css", ".txt", ""}]
    return [p for p in found if "_proto" not in p.parts and "__pycache__" not in p.parts]


def test_no_text_points_outside_the_repository() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _texts()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offending == []


def test_cli_help_names_no_outside_document() -> None:
    for command in (["webhooks", "add", "--help"], ["serve", "--help"], ["--help"]):
        shown = subprocess.run(
            [sys.executable, "-m", "toffeepay_server", *command], capture_output=True, text=True, check=True
        )
        assert not OUTSIDE.search(shown.stdout), shown.stdout


def test_build_output_is_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "sdk/python/build/lib/toffeepay/__init__.py", "sdk/python/dist/x.whl"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert ignored.stdout.split() == ["sdk/python/build/lib/toffeepay/__init__.py", "sdk/python/dist/x.whl"]
