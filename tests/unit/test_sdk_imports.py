"""What importing the SDK loads: verifying needs neither the HTTP nor the Connect stack."""

from __future__ import annotations

import subprocess
import sys

HTTP_STACK = ("pyqwest", "connectrpc", "protobuf")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_webhook_verification_loads_only_the_standard_library() -> None:
    for statement in ("import toffeepay.webhook", "import toffeepay; toffeepay.Webhook; toffeepay.LegacyCallback"):
        loaded = loaded_after(statement)
        assert not loaded & {*HTTP_STACK, "cryptography"}, statement


def test_return_token_verification_loads_cryptography_but_no_http() -> None:
    loaded = loaded_after("import toffeepay; toffeepay.ReturnToken")
    assert "cryptography" in loaded and not loaded & set(HTTP_STACK)


def test_the_client_and_everything_named_in_all_still_import() -> None:
    import toffeepay

    for name in toffeepay.__all__:
        assert getattr(toffeepay, name) is not None, name
    assert toffeepay.types.Session.__name__ == "Session"
    assert issubclass(toffeepay.FailedPreconditionError, toffeepay.ToffeePayError)
