"""The start-up fence around library internals: the pinned releases pass, another refuses
unless the operator opts in."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from toffeepay_server import internals
from toffeepay_server.config import ConfigError


def test_the_installed_releases_are_the_tested_ones() -> None:
    assert internals.untested() == []
    assert internals.check_internals({}) == []
    for name, (tested, _) in internals.TESTED.items():
        assert version(name) == tested


def test_an_untested_release_refuses_to_start_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(internals.TESTED, "aiosqlite", ("0.0.1", "the connection"))
    with pytest.raises(ConfigError) as refused:
        internals.check_internals({})
    assert "aiosqlite" in str(refused.value) and internals.ESCAPE_HATCH in str(refused.value)
    let_through = internals.check_internals({internals.ESCAPE_HATCH: "1"})
    assert len(let_through) == 1 and let_through[0].startswith(f"aiosqlite {version('aiosqlite')}")


def test_the_private_attributes_are_where_the_server_reaches() -> None:
    import aiosqlite

    assert "_tx" in aiosqlite.Connection.__init__.__code__.co_names or hasattr(aiosqlite.Connection, "_tx")
