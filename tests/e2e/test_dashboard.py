"""The studio dashboard in a real browser (Debian's Chromium), against `toffeepay serve` on both engines.

Every number and row on the pages comes from data made through the public API: sessions
paid, failed and cancelled, a dispute, and a webhook endpoint that answers 500.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import toffeepay

from tests.receiver import Answer, Receiver
from tests.support import Api, Game, Server, screenshot_path, sql

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
PASSWORD = "correct horse battery staple"
NAV = ["Overview", "Sessions", "Payments", "Disputes", "Webhooks", "API keys", "Events", "Audit log"]
TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
SERVER_ENV = {
    "TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS": "sandbox",
    "TOFFEEPAY_RATE_LIMIT": "off",
    # A paid session not fulfilled within 2 s is overdue (and listed under "Needs attention").
    "TOFFEEPAY_FULFILLMENT_GRACE": "2s",
}


def cli(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "toffeepay_server", *args],
        env=server.env,
        cwd=server.workdir,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def new_account(server: Server, game: Game | None, role: str | None, *, operator: bool = False) -> str:
    """An account made with the `toffeepay users` commands, as an operator would."""
    email = f"{role or 'operator'}-{uuid.uuid4().hex[:8]}@studio.example"
    cli(server, "users", "create", email, "--password-stdin", *(["--operator"] if operator else []), stdin=PASSWORD)
    if game is not None and role is not None:
        cli(server, "users", "grant", email, game.game_id, "--role", role)
    return email


@pytest.fixture(scope="module")
def dash(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(db_url, tmp_path_factory.mktemp("dashboard"), env=SERVER_ENV).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    opened = Receiver()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class World:
    """A game with real data, made through the API."""

    game: Game
    api: Api
    paid: dict[str, Any]
    failed: dict[str, Any]
    cancelled: dict[str, Any]
    payment: dict[str, Any]
    dispute: dict[str, Any]
    healthy: dict[str, Any]
    healthy_secret: str
    failing: dict[str, Any]
    owner: str


@pytest.fixture(scope="module")
def world(dash: Server, receiver: Receiver) -> World:
    game = dash.create_game()
    api = dash.api(game.sandbox_key)
    ok_path, bad_path = f"/ok-{game.game_id}", f"/bad-{game.game_id}"
    healthy = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url(ok_path)})
    receiver.expect(ok_path, healthy["secret"])
    failing = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url(bad_path), "events": ["session.paid"]})
    receiver.expect(bad_path, None, *[Answer(500, body=b"database is down")] * 50)
    paid = api.create_session(game.game_id, user_id="player_7")
    payment = api.ok("SandboxService/PaySession", {"session_id": paid["id"], "outcome": "succeeded"})
    failed = api.create_session(game.game_id, user_id="player_7", item={"title": "Gem", "price": 99, "currency": "EUR"})
    api.ok("SandboxService/PaySession", {"session_id": failed["id"], "outcome": "insufficient_funds"})
    cancelled = api.create_session(game.game_id, user_id="player_8")
    api.ok("PaymentService/CancelSession", {"id": cancelled["id"]})
    dispute = api.ok("SandboxService/CreateDispute", {"payment_id": payment["id"], "reason": "fraudulent"})
    # The failing endpoint has failed at least once, and the healthy one delivered the payment.
    receiver.wait_for(bad_path)
    receiver.wait(
        lambda: any(
            r.event_id and r.headers.get("x-toffeepay-event") == "dispute.created" for r in receiver.at(ok_path)
        )
    )
    owner = new_account(dash, game, "owner")
    return World(
        game,
        api,
        paid,
        failed,
        cancelled,
        payment,
        dispute,
        healthy["endpoint"],
        healthy["secret"],
        failing["endpoint"],
        owner,
    )


class Tab:
    """A browser context that records every request and every console error."""

    def __init__(self, browser: Any, server: Server, viewport: dict[str, int] = PHONE) -> None:
        self.server = server
        self.context = browser.new_context(viewport=viewport, locale="en-US")
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def base(self, game: Game, mode: str = "sandbox") -> str:
        return f"{self.server.url}/dashboard/{game.game_id}/{mode}"

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.page.goto(f"{self.server.url}/dashboard/")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()

    def button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name, exact=True)

    def nav(self, name: str) -> None:
        self.page.get_by_role("navigation", name="Dashboard").get_by_role("link", name=name, exact=True).click()
        expect(self.page.get_by_role("heading", level=1)).to_be_visible()

    def csrf(self) -> str:
        match = TOKEN.search(self.page.content())
        assert match, "no CSRF token on the page"
        return match.group(1)

    def post(self, path: str, form: dict[str, str]) -> Any:
        """A forged form post with this browser's cookies (as a page's script or a crafted form would)."""
        return self.context.request.post(path, form=form, max_redirects=0)

    def close(self) -> None:
        foreign = [u for u in self.requests if not u.startswith((self.server.url + "/", "data:"))]
        assert foreign == []
        # Pages answered 401/403/429 on purpose in some tests; nothing else may break (CSP included).
        assert [e for e in self.errors if not e.startswith("Failed to load resource")] == []
        self.context.close()


@pytest.fixture
def tab(browser: Any, dash: Server) -> Iterator[Tab]:
    opened = Tab(browser, dash)
    yield opened
    opened.close()


def audit_count(db_url: str) -> int:
    return sql(db_url, "SELECT COUNT(*) FROM audit_log")[0][0]


def test_sign_in_and_every_page_shows_the_game_data(tab: Tab, world: World, dash: Server) -> None:
    tab.sign_in(world.owner)
    expect(tab.page.get_by_role("heading", name="Overview")).to_be_visible()
    for name in NAV:
        expect(tab.page.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(tab.page.get_by_role("link", name="Sandbox")).to_have_attribute("aria-current", "page")
    expect(tab.page.get_by_label("Game")).to_have_value(world.game.game_id)
    # Overview: charts with text alternatives, totals, and what needs attention.
    charts = tab.page.get_by_role("img")
    expect(charts.first).to_be_visible()
    expect(tab.page.get_by_role("img", name="Sessions created and paid per day")).to_have_count(1)
    expect(tab.page.locator("svg desc").first).to_contain_text("3 sessions created, 1 paid")
    expect(tab.page.get_by_role("img", name="Revenue per day in USD")).to_have_count(1)
    expect(tab.page.locator(".totals")).to_contain_text("$4.99")
    expect(tab.page.get_by_role("img", name="Dispute rate per day")).to_have_count(1)
    attention = tab.page.get_by_role("region", name="Needs attention")
    expect(attention).to_contain_text(world.failing["url"])
    expect(attention).to_contain_text("1 new dispute")
    expect(attention).to_contain_text(f"1 paid session not fulfilled within the grace period: {world.paid['id']}")
    # Sessions: newest first, every status, filters and search by id.
    tab.nav("Sessions")
    rows = tab.page.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text(world.cancelled["id"])
    expect(rows.nth(0)).to_contain_text("cancelled")
    expect(rows.nth(1)).to_contain_text("failed")
    expect(rows.nth(2)).to_contain_text("paid")
    tab.page.get_by_label("Status").select_option("failed")
    tab.button("Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(world.failed["id"])
    tab.page.get_by_label("Status").select_option("")
    tab.page.get_by_label("User id").fill("player_8")
    tab.button("Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(world.cancelled["id"])
    tab.page.get_by_label("User id").fill("")
    tab.page.get_by_label("Fulfilled").select_option("no")
    tab.button("Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(world.paid["id"])
    tab.page.get_by_label("Search by id").fill(world.payment["id"])
    tab.page.get_by_label("Search by id").press("Enter")
    expect(tab.page.get_by_role("heading", level=1)).to_contain_text(world.paid["id"])
    # The session page: its timeline, with sequences and delivery attempts.
    timeline = tab.page.locator(".timeline")
    for number, event in enumerate(["session.created", "payment.created", "payment.succeeded", "session.paid"], 1):
        expect(timeline).to_contain_text(f"#{number} {event}")
    expect(timeline).to_contain_text("#5 dispute.created")
    expect(timeline).to_contain_text("#6 session.fulfillment_overdue")
    expect(tab.page.locator(".facts").first).to_contain_text("Fulfillednot yet")
    expect(timeline.locator(".attempts").first).to_contain_text("delivered")
    expect(timeline).to_contain_text("500")
    tab.page.set_viewport_size(DESKTOP)
    tab.page.screenshot(path=str(screenshot_path("dashboard-session.png")), full_page=True)
    tab.page.set_viewport_size(PHONE)
    # Payments, disputes, the player page, events.
    tab.nav("Payments")
    expect(tab.page.locator("tbody tr")).to_have_count(2)
    expect(tab.page.locator("tbody")).to_contain_text("insufficient_funds")
    tab.nav("Disputes")
    expect(tab.page.locator("tbody tr")).to_have_count(1)
    expect(tab.page.locator("tbody")).to_contain_text("fraudulent")
    tab.page.get_by_role("link", name="player_7").click()
    expect(tab.page.get_by_role("heading", level=1)).to_contain_text("player_7")
    totals = tab.page.locator(".totals")
    expect(totals).to_contain_text("Sessions2")
    expect(totals).to_contain_text("Disputes1")
    expect(totals).to_contain_text("Dispute rate100.0%")
    tab.nav("Events")
    expect(tab.page.locator("tbody tr", has_text="dispute.created")).to_contain_text(world.paid["id"])
    tab.page.get_by_label("Type").select_option("session.cancelled")
    tab.button("Apply").click()
    expect(tab.page.locator("tbody tr")).to_have_count(1)
    tab.page.locator("tbody a").first.click()
    expect(tab.page.locator("pre.json")).to_contain_text(world.cancelled["id"])
    # Webhooks: health of each endpoint; the failing one is failing.
    tab.nav("Webhooks")
    failing_row = tab.page.locator("tr", has_text=world.failing["url"])
    expect(failing_row).to_contain_text("UTC")
    expect(failing_row).to_contain_text("0.0%")
    expect(tab.page.locator("tr", has_text=world.healthy["url"])).to_contain_text("healthy")
    tab.nav("API keys")
    expect(tab.page.locator("tbody")).to_contain_text(world.game.sandbox_key[:12])
    expect(tab.page.locator("tbody tr").first).not_to_contain_text("never")  # the key was used just now
    tab.nav("Audit log")
    expect(tab.page.get_by_role("heading", name="Audit log")).to_be_visible()
    # The live side of the same game holds none of the sandbox data.
    tab.page.get_by_role("link", name="Live").click()
    tab.nav("Sessions")
    expect(tab.page.locator("tbody")).to_contain_text("No sessions match.")
    tab.page.get_by_role("link", name="Sandbox").click()
    tab.page.set_viewport_size(DESKTOP)
    tab.page.reload()
    tab.page.screenshot(path=str(screenshot_path("dashboard-overview.png")), full_page=True)
    # Keyboard: the skip link is the first stop and leads to the content.
    tab.page.keyboard.press("Tab")
    expect(tab.page.get_by_role("link", name="Skip to content")).to_be_focused()


def test_rotate_secret_then_webhooks_are_signed_with_both(
    tab: Tab, world: World, dash: Server, receiver: Receiver
) -> None:
    game = dash.create_game()
    api = dash.api(game.sandbox_key)
    path = f"/rotate-{game.game_id}"
    created = api.ok("WebhookService/CreateEndpoint", {"url": receiver.url(path)})
    old = created["secret"]
    receiver.expect(path, None)
    developer = new_account(dash, game, "developer")
    tab.sign_in(developer)
    tab.nav("Webhooks")
    tab.page.get_by_role("link", name=receiver.url(path)).click()
    tab.page.get_by_label("Old secret keeps working for").select_option("3600")
    tab.button("Rotate secret").click()
    new = tab.page.locator("#new-secret").inner_text()
    assert new.startswith("whsec_") and new != old
    expect(tab.page.get_by_role("status")).to_contain_text("shown only this once")
    rotated_at = audit_count(dash.db_url)
    tab.page.reload()  # the secret came after a redirect: a reload neither rotates again nor shows it
    expect(tab.page.locator("#new-secret")).to_have_count(0)
    assert audit_count(dash.db_url) == rotated_at
    tab.nav("Webhooks")  # shown once: opening the endpoint again shows it no more
    tab.page.get_by_role("link", name=receiver.url(path)).click()
    expect(tab.page.locator(".facts")).to_contain_text("Previous secret valid until")
    expect(tab.page.locator("#new-secret")).to_have_count(0)
    session = api.create_session(game.game_id)
    receiver.wait_for(path)
    request = receiver.at(path)[0]
    header = request.headers["x-toffeepay-signature"]
    assert header.count("v1=") == 2
    for secret in (old, new):
        event = toffeepay.Webhook.construct_event(request.body, header, secret)
        assert event["data"]["session_id"] == session["id"]
    # Disable and enable, from the same page.
    tab.button("Disable").click()
    expect(tab.button("Enable")).to_be_visible()
    expect(tab.page.locator(".facts")).to_contain_text("disabled (manual)")
    expect(tab.button("Send test event")).to_have_count(0)
    listed = api.ok("WebhookService/ListEndpoints", {})["endpoints"]
    assert [e["enabled"] for e in listed] == [False]
    tab.button("Enable").click()
    expect(tab.button("Disable")).to_be_visible()
    assert api.ok("WebhookService/ListEndpoints", {})["endpoints"][0]["enabled"] is True
    # Resend an attempt's event: one more delivery arrives.
    before = len(receiver.at(path))
    tab.page.get_by_role("button", name="Resend").first.click()
    receiver.wait(lambda: len(receiver.at(path)) > before)
    # A test event is sent at once and its answer shown; it is listed with trigger "test".
    tab.button("Send test event").click()
    expect(tab.page.get_by_role("status")).to_contain_text("delivered: answered 200")
    assert any(r.headers.get("x-toffeepay-event") == "ping" for r in receiver.at(path))
    expect(tab.page.locator("tbody tr", has_text="test").first).to_contain_text("200")
    # Replay today's events: each is delivered again (same event id, trigger replay).
    before = len(receiver.at(path))
    tab.page.get_by_text("Replay events to this endpoint").click()
    tab.page.get_by_label("From (UTC date)").fill(time.strftime("%Y-%m-%d", time.gmtime()))
    tab.page.get_by_role("group", name="Event types").get_by_label("session.created").check()
    tab.button("Replay").click()
    expect(tab.page.get_by_role("status")).to_contain_text("1 events will be delivered again")
    receiver.wait(lambda: len(receiver.at(path)) > before)
    assert receiver.at(path)[-1].event_id == request.headers["x-toffeepay-event-id"]
    # Add an endpoint: its secret is shown once.
    tab.nav("Webhooks")
    tab.page.get_by_label("URL").fill(receiver.url(path + "/second"))
    tab.page.get_by_label("session.paid").check()
    tab.button("Add endpoint").click()
    expect(tab.page.locator("#new-secret")).to_contain_text("whsec_")
    assert len(api.ok("WebhookService/ListEndpoints", {})["endpoints"]) == 2
    # The audit log lists each change, with who and from where.
    tab.nav("Audit log")
    log = tab.page.locator("tbody")
    for action in (
        "webhook.secret_rotated",
        "webhook.endpoint_disabled",
        "webhook.endpoint_enabled",
        "webhook.event_resent",
        "webhook.test_event_sent",
        "webhook.events_replayed",
        "webhook.endpoint_added",
    ):
        expect(log).to_contain_text(action)
    expect(log.locator("tr", has_text="webhook.secret_rotated")).to_contain_text(developer)
    expect(log.locator("tr", has_text="webhook.secret_rotated")).to_contain_text("127.0.0.1")
    expect(log).to_contain_text("member.granted")


def test_roll_and_revoke_keys_after_confirmation(tab: Tab, dash: Server) -> None:
    game = dash.create_game()
    owner = new_account(dash, game, "owner")
    api = dash.api(game.sandbox_key)
    api.ok("PaymentService/ListSessions", {})
    tab.sign_in(owner)
    tab.nav("API keys")
    tab.button("Roll key").click()
    expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Roll the sandbox key?")
    tab.button("Roll key").click()
    new_key = tab.page.locator("#new-key").inner_text()
    assert new_key.startswith("sk_test_")
    tab.page.reload()  # the key came after a redirect: a reload neither rolls again nor shows it
    expect(tab.page.locator("#new-key")).to_have_count(0)
    api.refused("PaymentService/ListSessions", {}, "unauthenticated", "unauthenticated")
    assert dash.api(new_key).ok("PaymentService/ListSessions", {})["total"] == 0
    # Revoke the live key, after its confirmation.
    live = dash.api(game.live_key)
    live.ok("PaymentService/ListSessions", {})
    tab.page.get_by_role("link", name="Live").click()
    tab.nav("API keys")
    tab.page.get_by_role("button", name="Revoke key").click()
    expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Revoke key")
    tab.page.get_by_role("link", name="Cancel").click()
    live.ok("PaymentService/ListSessions", {})  # cancelling changed nothing
    tab.page.get_by_role("button", name="Revoke key").click()
    tab.button("Revoke key").click()
    expect(tab.page.locator("tbody")).to_contain_text("revoked")
    live.refused("PaymentService/ListSessions", {}, "unauthenticated", "unauthenticated")
    # The owner gives a colleague a role, then takes it away.
    colleague = new_account(dash, None, "colleague")
    tab.nav("Members")
    tab.page.get_by_label("Email").fill(colleague)
    tab.page.get_by_label("Role").select_option("developer")
    tab.button("Grant role").click()
    expect(tab.page.locator("tbody tr", has_text=colleague)).to_contain_text("developer")
    other = Tab(tab.page.context.browser, dash)
    try:
        other.sign_in(colleague)
        expect(other.page.get_by_label("Game")).to_have_value(game.game_id)
    finally:
        other.close()
    tab.page.get_by_role("button", name=f"Remove {colleague}").click()
    expect(tab.page.locator("tbody")).not_to_contain_text(colleague)
    tab.nav("Audit log")
    for action in ("api_key.rolled", "api_key.revoked", "member.granted", "member.revoked"):
        expect(tab.page.locator("tbody")).to_contain_text(action)


def test_a_viewer_is_refused_every_change(tab: Tab, world: World, dash: Server, db_url: str) -> None:
    viewer = new_account(dash, world.game, "viewer")
    tab.sign_in(viewer)
    expect(tab.page.get_by_role("heading", name="Overview")).to_be_visible()
    base = tab.base(world.game)
    # The forms are not there.
    tab.nav("Webhooks")
    expect(tab.page.get_by_role("button", name="Add endpoint")).to_have_count(0)
    tab.page.get_by_role("link", name=world.healthy["url"]).click()
    for name in ("Rotate secret", "Disable", "Resend", "Send test event", "Replay"):
        expect(tab.page.get_by_role("button", name=name)).to_have_count(0)
    tab.nav("API keys")
    expect(tab.page.get_by_role("button", name="Roll key")).to_have_count(0)
    expect(tab.page.get_by_role("button", name="Revoke key")).to_have_count(0)
    tab.page.goto(f"{base}/sessions/{world.paid['id']}")
    expect(tab.page.get_by_role("heading", name="Payment")).to_be_visible()
    expect(tab.page.get_by_role("button", name="Refund")).to_have_count(0)
    token = tab.csrf()  # the sign-out form's: a valid token of this session
    before = audit_count(db_url)
    keys = sql(db_url, "SELECT id, revoked_at FROM api_keys WHERE game_id = :g ORDER BY id", {"g": world.game.game_id})
    endpoints = world.api.ok("WebhookService/ListEndpoints", {})["endpoints"]
    key_id = keys[0][0]
    forged = [
        (f"{base}/webhooks", {"url": "https://example.com/hook"}),
        (f"{base}/webhooks/{world.healthy['id']}/rotate", {"overlap": "0"}),
        (f"{base}/webhooks/{world.healthy['id']}/disable", {}),
        (f"{base}/webhooks/{world.healthy['id']}/test", {}),
        (f"{base}/webhooks/{world.healthy['id']}/replay", {"from": "2020-01-01"}),
        (f"{base}/webhooks/{world.failing['id']}/resend", {"event_id": str(uuid.uuid4())}),
        (f"{base}/keys/roll", {}),
        (f"{base}/keys/revoke", {"key": key_id}),
        (f"{tab.base(world.game, 'live')}/keys/roll", {}),
        (f"{base}/members", {"email": viewer, "role": "owner"}),
        (f"{base}/sessions/{world.paid['id']}/refund", {"amount": "1"}),
        (f"{base}/members/remove", {"email": world.owner}),
        (f"{dash.url}/dashboard/games", {"game_id": "viewer_game"}),
    ]
    for url, form in forged:
        response = tab.post(url, {"csrf_token": token, **form})
        assert response.status == 403, (url, response.status)
    assert audit_count(db_url) == before
    assert (
        sql(db_url, "SELECT id, revoked_at FROM api_keys WHERE game_id = :g ORDER BY id", {"g": world.game.game_id})
        == keys
    )
    assert world.api.ok("WebhookService/ListEndpoints", {})["endpoints"] == endpoints
    assert world.api.ok("PaymentService/ListRefunds", {})["total"] == 0
    world.api.ok("PaymentService/ListSessions", {})
    # A developer manages sandbox keys but not live ones.
    developer = new_account(dash, world.game, "developer")
    other = Tab(tab.page.context.browser, dash)
    try:
        other.sign_in(developer)
        other.page.goto(f"{tab.base(world.game, 'live')}/keys")
        expect(other.page.get_by_role("button", name="Roll key")).to_have_count(0)
        response = other.post(f"{tab.base(world.game, 'live')}/keys/roll", {"csrf_token": other.csrf()})
        assert response.status == 403
        dash.api(world.game.live_key).ok("PaymentService/ListSessions", {})
    finally:
        other.close()


def test_csrf_forgeries_are_refused(tab: Tab, world: World, dash: Server, db_url: str) -> None:
    tab.sign_in(world.owner)
    expect(tab.page.get_by_role("heading", name="Overview")).to_be_visible()
    url = f"{tab.base(world.game)}/webhooks/{world.healthy['id']}/disable"
    before = audit_count(db_url)
    for form in ({}, {"csrf_token": "0" * 64}, {"csrf_token": ""}):
        response = tab.post(url, form)
        assert response.status == 403
        assert "Nothing was changed" in response.text()
    # Another site's form: the browser says cross-site, and the cookie alone is not enough.
    cookie = {c["name"]: c["value"] for c in tab.context.cookies()}
    response = httpx.post(
        url, data={"csrf_token": tab.csrf()}, cookies=cookie, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403
    # A token from another account's session does not fit this one.
    other = httpx.Client(base_url=dash.url)
    page = other.get("/dashboard/sign-in")
    other.post(
        "/dashboard/sign-in",
        data={"csrf_token": TOKEN.search(page.text).group(1), "email": world.owner, "password": PASSWORD},
    )
    foreign_token = TOKEN.search(other.get(f"{tab.base(world.game)}/").text).group(1)
    assert tab.post(url, {"csrf_token": foreign_token}).status == 403
    # Sign-in itself needs the form's token.
    assert (
        httpx.post(f"{dash.url}/dashboard/sign-in", data={"email": world.owner, "password": PASSWORD}).status_code
        == 403
    )
    assert audit_count(db_url) == before
    assert world.api.ok("WebhookService/ListEndpoints", {})["endpoints"][0]["enabled"] is True
    # The session cookie: HttpOnly, SameSite=Lax (Secure only under https).
    session_cookie = next(c for c in tab.context.cookies() if c["name"] == "toffeepay_dashboard")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax" and not session_cookie["secure"]


def test_sign_in_is_rate_limited(tab: Tab, world: World, dash: Server) -> None:
    email = new_account(dash, world.game, "viewer")
    for _ in range(5):
        tab.sign_in(email, "not the password at all")
        expect(tab.page.get_by_role("alert")).to_have_text("That email and password do not match.")
    tab.sign_in(email)  # the right password, but too many attempts
    expect(tab.page.get_by_role("alert")).to_contain_text("Too many sign-in attempts")
    assert "/sign-in" in tab.page.url


def test_sign_out_and_idle_sessions_end(browser: Any, world: World, dash: Server, db_url: str, tmp_path) -> None:
    idle = Server(db_url, tmp_path, env={**SERVER_ENV, "TOFFEEPAY_DASHBOARD_IDLE_TIMEOUT": "2"}).start()
    tab = Tab(browser, idle)
    try:
        tab.sign_in(world.owner)
        expect(tab.page.get_by_role("heading", name="Overview")).to_be_visible()
        overview = tab.page.url
        # Left idle past the timeout (2 s), the session has ended: the page asks to sign in again.
        time.sleep(3)
        tab.page.goto(overview)
        assert "/dashboard/sign-in" in tab.page.url
        expect(tab.page.get_by_role("button", name="Sign in")).to_be_visible()
        # Signed in again, "Sign out" ends the session at once, also for a copy of the cookie.
        tab.sign_in(world.owner)
        expect(tab.page.get_by_role("heading", name="Overview")).to_be_visible()
        assert tab.page.url == overview
        cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
        tab.button("Sign out").click()
        expect(tab.page.get_by_role("button", name="Sign in")).to_be_visible()
        copied = httpx.get(overview, cookies=cookies)
        assert copied.status_code == 303 and "/dashboard/sign-in" in copied.headers["location"]
    finally:
        tab.close()
        idle.stop()


def test_an_operator_registers_games_and_sees_every_game(tab: Tab, world: World, dash: Server) -> None:
    operator = new_account(dash, None, None, operator=True)
    tab.sign_in(operator)
    tab.page.goto(f"{tab.base(world.game)}/")
    expect(tab.page.get_by_role("heading", name="Overview")).to_be_visible()
    tab.page.get_by_role("link", name="Games").click()
    game_id = f"reg_{uuid.uuid4().hex[:10]}"
    tab.page.get_by_label("Game id").fill(game_id)
    tab.button("Register game").click()
    key = tab.page.locator("#sandbox-key").inner_text()
    assert dash.api(key).ok("PaymentService/ListSessions", {})["total"] == 0
    tab.page.get_by_role("link", name=game_id).click()
    expect(tab.page.get_by_label("Game")).to_have_value(game_id)
    tab.nav("Audit log")
    expect(tab.page.locator("tbody")).to_contain_text("game.registered")
    expect(tab.page.locator("tbody")).to_contain_text(operator)


def test_refund_a_payment_from_its_session_page(tab: Tab, dash: Server) -> None:
    game = dash.create_game()
    api = dash.api(game.sandbox_key)
    session = api.create_session(game.game_id, item={"title": "Sword", "price": 1500, "currency": "USD"})
    payment = api.ok("SandboxService/PaySession", {"session_id": session["id"], "outcome": "succeeded"})
    tab.sign_in(new_account(dash, game, "developer"))
    tab.page.goto(f"{tab.base(game)}/sessions/{session['id']}")
    tab.page.get_by_label("Amount in minor units of USD").fill("500")
    tab.page.get_by_label("Reason").select_option("duplicate")
    tab.button("Refund").click()
    expect(tab.page.get_by_role("table", name="Refunds of this payment")).to_contain_text("$5.00")
    expect(tab.page.get_by_role("table", name="Refunds of this payment")).to_contain_text("duplicate")
    refunds = api.ok("PaymentService/ListRefunds", {"payment_id": payment["id"]})["refunds"]
    assert [(r["amount"], r["reason"]) for r in refunds] == [(500, "duplicate")]
    # More than is left is refused, and nothing more is refunded.
    tab.page.get_by_label("Amount in minor units of USD").fill("1001")
    tab.button("Refund").click()
    expect(tab.page.get_by_role("heading", level=1)).to_have_text("That did not work.")
    assert "invalid_refund_amount" in tab.page.content()
    assert api.ok("PaymentService/ListRefunds", {"payment_id": payment["id"]})["total"] == 1
    # The rest, once the first settled; the page then offers no more refunds.
    wait_until(lambda: api.ok("PaymentService/GetPayment", {"id": payment["id"]}).get("amount_refunded") == 500)
    tab.page.goto(f"{tab.base(game)}/sessions/{session['id']}")
    tab.button("Refund").click()
    wait_until(lambda: api.ok("PaymentService/GetPayment", {"id": payment["id"]}).get("amount_refunded") == 1500)
    tab.page.reload()
    expect(tab.page.get_by_role("button", name="Refund")).to_have_count(0)
    tab.nav("Audit log")
    expect(tab.page.locator("tbody tr", has_text="payment.refunded")).to_have_count(2)


def wait_until(probe: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
