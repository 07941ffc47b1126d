"""An endpoint's lifecycle: enabled or disabled (for a reason), changed only through its guard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from toffeepay_server.domain.errors import DomainError, Reason
from toffeepay_server.domain.webhooks import ENDPOINT_TRANSITIONS, DisabledReason, Endpoint, EndpointState

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def endpoint(**changes: object) -> Endpoint:
    values: dict[str, object] = dict(
        id="we_1",
        game_id="g",
        mode="sandbox",
        url="https://hooks.example/",
        format="json",
        events=(),
        enabled=True,
        description=None,
        secret="whsec_x",
        previous_secret=None,
        previous_secret_expires_at=None,
        created_at=NOW,
    )
    values.update(changes)
    return Endpoint(**values)  # type: ignore[arg-type]


def test_the_table_is_exactly_this() -> None:
    both = frozenset(EndpointState)
    assert {EndpointState.ENABLED: both, EndpointState.DISABLED: both} == ENDPOINT_TRANSITIONS
    assert [s.value for s in EndpointState] == ["enabled", "disabled"]
    assert [r.value for r in DisabledReason] == ["failing", "manual"]


def test_disabling_records_the_reason() -> None:
    disabled = endpoint(failing_since=NOW).disable(DisabledReason.FAILING)
    assert disabled.state is EndpointState.DISABLED and not disabled.enabled
    assert disabled.disabled_reason is DisabledReason.FAILING
    assert disabled.failing_since == NOW  # the run of failures stays on record while disabled


def test_a_disabled_endpoint_keeps_the_reason_it_was_first_disabled_for() -> None:
    failing = endpoint(enabled=False, disabled_reason=DisabledReason.FAILING)
    assert failing.disable(DisabledReason.MANUAL).disabled_reason is DisabledReason.FAILING


def test_enabling_forgets_the_reason_and_the_run_of_failures() -> None:
    for start in (
        endpoint(enabled=False, disabled_reason=DisabledReason.MANUAL, failing_since=NOW, failing_reported_at=NOW),
        endpoint(failing_since=NOW, failing_reported_at=NOW),
    ):
        enabled = start.enable()
        assert enabled.state is EndpointState.ENABLED
        assert (enabled.disabled_reason, enabled.failing_since, enabled.failing_reported_at) == (None, None, None)


@pytest.mark.parametrize("move", ["enable", "disable"])
def test_a_deleted_endpoint_never_changes_state(move: str) -> None:
    deleted = endpoint(enabled=False, deleted_at=NOW)
    with pytest.raises(DomainError) as caught:
        deleted.enable() if move == "enable" else deleted.disable(DisabledReason.MANUAL)
    assert caught.value.reason is Reason.INTERNAL
