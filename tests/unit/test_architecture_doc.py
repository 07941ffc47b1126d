"""docs/architecture.md names every import contract and every layer the contracts check."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_architecture_page_names_every_contract_and_layer() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    for contract in contracts:
        assert f"*{contract['name']}" in page, contract["name"]
        modules = [*contract.get("layers", []), *contract.get("source_modules", [])]
        for entry in modules:
            for module in entry.split("|"):
                name = module.strip().removeprefix("toffeepay_server.")
                assert f"`{name}`" in page, name
