"""The one error path: every reason code has one Connect code, one HTTP status, one message
form and one ErrorInfo detail, and docs/api.md says the same."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from connectrpc.code import Code
from toffeepay._proto.google.rpc.error_details_pb import ErrorInfo

from toffeepay_server.api.errors import ERROR_DOMAIN, ERRORS, error_body, http_status, reason_of, to_connect
from toffeepay_server.domain.errors import DomainError, Reason

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def documented() -> dict[str, tuple[str, int]]:
    """The Errors table of docs/api.md: reason -> (Connect code, HTTP status).

    A row that gives no HTTP status has the status the table last gave for its code.
    """
    text = API_DOC.read_text()
    table = text[text.index("| reason | Connect code (HTTP) | when |") :].split("\n\n", 1)[0]
    last_status: dict[str, int] = {}
    found: dict[str, tuple[str, int]] = {}
    for row in table.splitlines()[2:]:
        names, code_cell = row.split("|")[1:3]
        match = re.fullmatch(r"\s*([a-z_]+)(?: \((\d{3})\))?\s*", code_cell)
        assert match, row
        code, status = match.group(1), match.group(2)
        if status:
            last_status.setdefault(code, int(status))
        for name in re.findall(r"`([a-z_]+)`", names):
            found[name] = (code, int(status) if status else last_status[code])
    return found


def test_the_table_is_total() -> None:
    assert set(ERRORS) == set(Reason)


def test_docs_list_every_reason_with_its_code_and_status() -> None:
    docs = documented()
    assert set(docs) == {r.value for r in Reason}
    for reason, kind in ERRORS.items():
        assert docs[reason.value] == (kind.code.value, kind.http_status), reason


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_becomes_one_connect_error(reason: Reason) -> None:
    error = to_connect(DomainError(reason, "a sentence for people"), "req_1")
    assert error.code is ERRORS[reason].code
    assert error.message == f"{reason.value}: a sentence for people"
    assert reason_of(error.code.value, error.message) == reason.value
    (detail,) = error.details
    assert detail.type_name == "google.rpc.ErrorInfo"
    info = ErrorInfo.from_binary(detail.message_bytes)
    assert (info.reason, info.domain, dict(info.metadata)) == (reason.value, ERROR_DOMAIN, {"request_id": "req_1"})
    assert http_status(reason) == ERRORS[reason].http_status


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_the_same_body_outside_the_rpc_handlers(reason: Reason) -> None:
    message = DomainError(reason, "x").message
    body = json.loads(error_body(ERRORS[reason].code.value, message, request_id="req_2"))
    assert (body["code"], body["message"]) == (ERRORS[reason].code.value, message)
    (detail,) = body["details"]
    info = ErrorInfo.from_binary(base64.b64decode(detail["value"] + "=="))
    assert info.reason == reason.value and info.metadata["request_id"] == "req_2"


def test_bad_input_is_never_a_server_error() -> None:
    server_side = {Reason.INTERNAL, Reason.UNAVAILABLE}
    for reason, kind in ERRORS.items():
        assert (kind.http_status >= 500) is (reason in server_side), reason
        assert kind.code is not Code.UNKNOWN
