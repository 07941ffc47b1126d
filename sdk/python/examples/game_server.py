"""A game server that sells 50 Gold Coins through ToffeePay."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import toffeepay
from toffeepay.types import ItemParams

client = toffeepay.ToffeePay(
    os.environ["TOFFEEPAY_API_KEY"], base_url=os.environ.get("TOFFEEPAY_URL", "http://127.0.0.1:8000")
)
WEBHOOK_SECRET = os.environ["TOFFEEPAY_WEBHOOK_SECRET"]
CATALOG: dict[str, ItemParams] = {"gold_50": {"title": "50 Gold Coins", "price": 499, "currency": "USD"}}
granted: set[str] = set()  # session ids: webhooks can arrive twice, and the game may ask too


def grant(user_id: str, metadata: dict[str, Any], session_id: str) -> None:
    sku = metadata.get("sku")
    if sku not in CATALOG:  # not sold by this server, e.g. made by `toffeepay trigger`
        print(f"nothing to grant for session {session_id} (metadata {metadata})", flush=True)
        return
    if session_id not in granted:
        granted.add(session_id)
        print(f"granted {CATALOG[sku]['title']} to {user_id} (session {session_id})", flush=True)
    client.sessions.fulfill(session_id)  # tell ToffeePay it is granted (safe to repeat)


class GameServer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/buy":  # the game asks to buy: {"user_id": ..., "sku": ...}
            order = json.loads(body)
            try:
                session = client.sessions.create(
                    game_id="space_shooter",
                    user_id=order["user_id"],
                    item=CATALOG[order["sku"]],
                    return_url="mygame://payment-complete",
                    metadata={"sku": order["sku"]},
                )
            except toffeepay.ToffeePayError as e:
                return self.reply(502, {"error": e.reason, "message": e.message})
            self.reply(200, {"session_id": session.id, "payment_url": session.url})
        elif self.path == "/webhooks":  # ToffeePay tells us what happened
            try:
                event = toffeepay.Webhook.construct_event(
                    body, self.headers.get("X-ToffeePay-Signature"), WEBHOOK_SECRET
                )
            except toffeepay.SignatureVerificationError:
                return self.reply(400, {"error": "bad signature"})
            if event["event"] == "session.paid":  # other events are acknowledged and ignored
                data = event["data"]
                grant(data["user_id"], data.get("metadata", {}), data["session_id"])
            self.reply(200, {})
        else:
            self.reply(404, {})

    def do_GET(self) -> None:  # the game is back from the payment page: /status?session_id=sess_...
        session_id = parse_qs(urlsplit(self.path).query)["session_id"][0]
        session = client.sessions.get(session_id)
        if session.status == "paid":
            grant(session.user_id, dict(session.metadata), session.id)
        self.reply(200, {"status": session.status})

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "3000"))), GameServer).serve_forever()
