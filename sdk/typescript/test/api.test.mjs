// The client against a real `toffeepay serve`, given by the test run in TOFFEEPAY_TEST_* variables.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, request as httpRequest } from "node:http";
import { randomUUID } from "node:crypto";
import {
  APIConnectionError,
  AuthenticationError,
  ConflictError,
  RateLimitError,
  FailedPreconditionError,
  InvalidRequestError,
  NotFoundError,
  LegacyCallback,
  PermissionDeniedError,
  ReturnToken,
  ToffeePay,
  ToffeePayError,
  Webhook,
} from "../dist/index.js";

const env = process.env;
const BASE_URL = env.TOFFEEPAY_TEST_BASE_URL;
const skip = BASE_URL ? false : "SKIP: TOFFEEPAY_TEST_BASE_URL is not set (run through tests/e2e/test_sdk_languages.py)";
const GAME = env.TOFFEEPAY_TEST_GAME_ID;
const ITEM = { title: "50 Gold Coins", price: 499, currency: "USD" };
const client = (options = {}) => new ToffeePay(env.TOFFEEPAY_TEST_SANDBOX_KEY, { baseUrl: BASE_URL, retryDelayMs: 50, ...options });
const player = () => `player_${randomUUID().slice(0, 8)}`;

/** An HTTP server on a free loopback port; resolves to its URL. */
function listen(handler) {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` })));
}

const readBody = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });

/**
 * A proxy in front of the server recording requests. `failFirst`: "before" answers the first
 * request 503 without forwarding it; "after" forwards it, drops the answer and answers 503.
 */
async function proxy(failFirst) {
  const requests = [];
  const { server, url } = await listen(async (req, res) => {
    const body = await readBody(req);
    requests.push({ headers: req.headers, body: body.toString() });
    const first = requests.length === 1;
    if (first && failFirst === "before") return res.writeHead(503, { "content-type": "text/plain" }).end("upstream unavailable");
    const target = new URL(req.url, BASE_URL);
    const upstream = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, async (answer) => {
      const data = await readBody(answer);
      if (first && failFirst === "after") return res.writeHead(503, { "content-type": "text/plain" }).end("upstream unavailable");
      res.writeHead(answer.statusCode, answer.headers).end(data);
    });
    upstream.end(body);
  });
  return { url, requests, close: () => new Promise((r) => server.close(r)) };
}

describe("against toffeepay serve", { skip }, () => {
  test("create, get, status, cancel", async () => {
    const tp = client();
    const userId = player();
    const created = await tp.sessions.create({ gameId: GAME, userId, item: ITEM, returnUrl: "mygame://done", metadata: { order: "A-17" } });
    assert.match(created.id, /^sess_[0-9a-z]{26}$/);
    assert.equal(created.sessionId, created.id);
    assert.equal(created.url, `${BASE_URL}/${created.id}`);
    const session = await tp.sessions.get(created.id);
    assert.equal(session.status, "pending");
    assert.equal(session.userId, userId);
    assert.deepEqual({ ...session.item, $typeName: undefined }, { ...ITEM, $typeName: undefined });
    assert.equal(session.metadata.order, "A-17");
    assert.equal((await tp.sessions.status(created.id)).status, "pending");
    await tp.sessions.cancel(created.id);
    assert.equal((await tp.sessions.status(created.id)).status, "cancelled");
    await assert.rejects(tp.sessions.cancel(created.id), (e) => e instanceof FailedPreconditionError && e.reason === "session_not_pending");
    // The generated clients: every RPC, the same key, retries and typed errors.
    assert.equal((await tp.rpc.payment.getSession({ sessionId: created.id })).status, "cancelled");
    assert.equal((await tp.rpc.health.check({})).status, "serving");
    await assert.rejects(tp.rpc.payment.getPayment({ id: "pay_01jwbq1rz3m0c6t9y2d8h5n1kq" }), (e) => e instanceof NotFoundError && e.reason === "not_found");
  });

  test("list with paging walks every page", async () => {
    const tp = client();
    const userId = player();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await tp.sessions.create({ gameId: GAME, userId, item: ITEM })).id);
    const first = await tp.sessions.list({ userId, limit: 2 });
    assert.equal(first.data.length, 2);
    assert.equal(first.total, 5);
    assert.equal(first.hasMore, true);
    assert.deepEqual(first.data.map((s) => s.id), [ids[4], ids[3]]);
    const seen = [];
    for await (const session of first) seen.push(session.id);
    assert.deepEqual(seen, [...ids].reverse());
    const last = await (await (await first.nextPage()).nextPage());
    assert.equal(last.hasMore, false);
    assert.equal(await last.nextPage(), null);
    assert.deepEqual((await tp.sessions.list({ userId, status: "pending", offset: 4 })).data.map((s) => s.id), [ids[0]]);
  });

  test("pay through the sandbox: payments, a declined card, a dispute", async () => {
    const tp = client();
    const userId = player();
    const session = await tp.sessions.create({ gameId: GAME, userId, item: ITEM });
    const payment = await tp.sandbox.paySession(session.id, { method: "apple_pay" });
    assert.equal(payment.status, "succeeded");
    assert.equal(payment.amount, 499);
    assert.equal((await tp.sessions.status(session.id)).status, "paid");
    assert.deepEqual((await tp.sessions.list({ userId, fulfilled: false })).data.map((s) => s.id), [session.id]);
    const fulfilled = await tp.sessions.fulfill(session.id);
    assert.ok(fulfilled.fulfilledAt);
    assert.deepEqual(await tp.sessions.fulfill(session.id), fulfilled);
    assert.deepEqual((await tp.sessions.list({ userId, fulfilled: true })).data.map((s) => s.id), [session.id]);
    assert.equal((await tp.payments.get(payment.id)).sessionId, session.id);
    assert.deepEqual((await tp.payments.list({ userId })).data.map((p) => p.id), [payment.id]);
    const declined = await tp.sessions.create({ gameId: GAME, userId, item: ITEM });
    const failed = await tp.sandbox.paySession(declined.id, { outcome: "card_declined" });
    assert.equal(failed.failureCode, "card_declined");
    const dispute = await tp.sandbox.createDispute(payment.id, { reason: "fraudulent" });
    assert.equal(dispute.paymentId, payment.id);
    assert.deepEqual((await tp.disputes.list({ paymentId: payment.id })).data.map((d) => d.id), [dispute.id]);
    const expiring = await tp.sessions.create({ gameId: GAME, userId, item: ITEM });
    assert.equal((await tp.sandbox.expireSession(expiring.id)).status, "expired");
  });

  test("refunds: part of a payment, a sandbox refund that fails, the rest; refusals", async () => {
    const tp = client();
    const settled = async (id) => {
      for (let i = 0; i < 200; i++) {
        const refund = await tp.refunds.get(id);
        if (refund.status !== "pending") return refund;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`refund ${id} still pending`);
    };
    const userId = player();
    const session = await tp.sessions.create({ gameId: GAME, userId, item: ITEM });
    const payment = await tp.sandbox.paySession(session.id);
    const part = await tp.refunds.create(payment.id, { amount: 100, reason: "duplicate" });
    assert.deepEqual([part.paymentId, part.sessionId, part.amount, part.currency, part.reason], [payment.id, session.id, 100, "USD", "duplicate"]);
    assert.equal((await settled(part.id)).status, "succeeded");
    await assert.rejects(tp.refunds.create(payment.id, { amount: 400 }), (e) => e instanceof InvalidRequestError && e.reason === "invalid_refund_amount");
    const failing = await tp.sandbox.createRefund(payment.id, { amount: 50, outcome: "failed" });
    assert.equal((await settled(failing.id)).status, "failed");
    const rest = await tp.refunds.create(payment.id);
    assert.equal(rest.amount, 399);
    assert.equal((await settled(rest.id)).status, "succeeded");
    assert.equal((await tp.payments.get(payment.id)).amountRefunded, 499);
    const refunds = await tp.refunds.list({ paymentId: payment.id, limit: 2 });
    assert.equal(refunds.total, 3);
    assert.deepEqual((await refunds.all()).map((r) => r.id), [rest.id, failing.id, part.id]);
    const declined = await tp.sessions.create({ gameId: GAME, userId, item: ITEM });
    const failed = await tp.sandbox.paySession(declined.id, { outcome: "card_declined" });
    await assert.rejects(tp.refunds.create(failed.id), (e) => e instanceof FailedPreconditionError && e.reason === "payment_not_refundable");
  });

  test("a webhook received by a Node server and verified", async () => {
    const tp = client();
    const received = [];
    let secret;
    let sessionId;
    let wanted;
    const arrived = new Promise((resolve) => {
      wanted = resolve;
    });
    const { server, url } = await listen(async (req, res) => {
      const body = await readBody(req);
      try {
        const event = Webhook.constructEvent(body, req.headers["x-toffeepay-signature"], secret);
        received.push(event);
        res.writeHead(200).end("ok");
        if (event.event === "payment.succeeded" && event.data.session_id === sessionId) wanted(event);
      } catch (error) {
        res.writeHead(400).end(String(error));
      }
    });
    try {
      const created = await tp.webhooks.createEndpoint({ url: `${url}/hooks`, events: ["payment.succeeded"], description: "node test" });
      secret = created.secret;
      assert.match(secret, /^whsec_/);
      const userId = player();
      const session = await tp.sessions.create({ gameId: GAME, userId, item: ITEM });
      sessionId = session.id;
      const payment = await tp.sandbox.paySession(session.id);
      const event = await arrived;
      assert.equal(event.data.payment_id, payment.id);
      assert.equal(event.data.session_id, session.id);
      assert.equal(event.mode, "sandbox");
      const endpoints = await tp.webhooks.listEndpoints();
      assert.ok(endpoints.endpoints.some((e) => e.id === created.endpoint.id));
      const events = await tp.webhooks.listEvents({ types: ["payment.succeeded"], limit: 250 });
      assert.ok(events.data.some((e) => e.id === event.id));
      assert.equal((await tp.webhooks.resendEvent(event.id, { endpointId: created.endpoint.id })).deliveries, 1);
      const rotated = await tp.webhooks.rotateSecret(created.endpoint.id, { overlapSeconds: 60 });
      assert.notEqual(rotated.secret, secret);
      const updated = await tp.webhooks.updateEndpoint({ id: created.endpoint.id, enabled: false });
      assert.equal(updated.enabled, false);
      await tp.webhooks.deleteEndpoint(created.endpoint.id);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test("a return token from the payment page, verified with the served JWKS", async () => {
    const tp = client();
    const session = await tp.sessions.create({ gameId: GAME, userId: player(), item: ITEM, returnUrl: "mygame://payment-complete?from=node" });
    // The player cancels on the payment page, a browser's way: the page, its CSRF cookie and form.
    const page = await fetch(session.url);
    const cookie = page.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    const html = await page.text();
    const csrf = /name="csrf_token" value="([^"]+)"/.exec(html)[1];
    const action = /<form method="post" action="([^"]+)" class="cancel">/.exec(html)[1];
    const answer = await fetch(new URL(action, session.url), {
      method: "POST",
      redirect: "manual",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf_token: csrf }),
    });
    assert.equal(answer.status, 303);
    // The result page sends the browser on to the return_url, and offers it as a button.
    const result = await (await fetch(new URL(answer.headers.get("location"), session.url), { headers: { cookie } })).text();
    const next = /<a class="button primary" href="([^"]+)">Return to the game<\/a>/.exec(result)[1].replaceAll("&amp;", "&");
    const back = new URL(next);
    assert.equal(back.searchParams.get("session_id"), session.id);
    const token = back.searchParams.get("token");
    const jwks = await (await fetch(`${BASE_URL}/.well-known/jwks.json`)).json();
    const claims = ReturnToken.verify(token, jwks, { gameId: GAME });
    assert.deepEqual([claims.sessionId, claims.gameId, claims.status], [session.id, GAME, "cancelled"]);
    assert.equal(claims.exp - claims.iat, 600);
    assert.throws(() => ReturnToken.verify(token, jwks, { gameId: "other_game" }), (e) => e.reason === "wrong_game");
    assert.throws(() => ReturnToken.verify(token, jwks, { gameId: GAME, now: claims.exp }), (e) => e.reason === "expired");
    assert.throws(() => ReturnToken.verify(token, { keys: [] }, { gameId: GAME }), (e) => e.reason === "unknown_key");
  });

  test("a legacy form callback received by a Node server and verified", async () => {
    const tp = client();
    let secret;
    let wanted;
    let got;
    const arrived = new Promise((resolve) => {
      got = resolve;
    });
    const { server, url } = await listen(async (req, res) => {
      const body = (await readBody(req)).toString();
      try {
        const fields = LegacyCallback.verify(body, secret);
        res.writeHead(200).end("OK");
        if (fields.transaction_token === wanted) got(fields);
      } catch (error) {
        res.writeHead(400).end(String(error));
      }
    });
    try {
      const created = await tp.webhooks.createEndpoint({ url: `${url}/callback`, format: "legacy_form" });
      secret = created.secret;
      const session = await tp.sessions.create({ gameId: GAME, userId: "player&admin=1", item: ITEM, metadata: { note: "a&b=c" } });
      wanted = session.id;
      const payment = await tp.sandbox.paySession(session.id);
      const fields = await arrived;
      assert.deepEqual(
        [fields.transaction_id, fields.status, fields.amount, fields.paid_amount, fields.transaction_token, fields.game_id, fields.user_id],
        [payment.id, "PAID", "499", "499", session.id, GAME, "player%26admin%3D1"],
      );
      assert.deepEqual(JSON.parse(fields.custom_parameters), { note: "a&b=c" });
      assert.throws(() => LegacyCallback.verify({ ...fields, amount: "1" }, secret), (e) => e.reason === "bad_signature");
      await tp.webhooks.deleteEndpoint(created.endpoint.id);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test("delivery attempts, a test event and a replay, each verified by the receiver", async () => {
    const tp = client();
    const received = [];
    let secret;
    const { server, url } = await listen(async (req, res) => {
      const body = await readBody(req);
      try {
        received.push(Webhook.constructEvent(body, req.headers["x-toffeepay-signature"], secret));
        res.writeHead(200).end("ok");
      } catch (error) {
        res.writeHead(400).end(String(error));
      }
    });
    const arrived = async (predicate, count = 1) => {
      for (let i = 0; i < 400 && received.filter(predicate).length < count; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(received.filter(predicate).length >= count, `waited for ${count}: ${JSON.stringify(received)}`);
    };
    try {
      const since = new Date(Date.now() - 60_000);
      const created = await tp.webhooks.createEndpoint({ url: `${url}/hooks`, events: ["session.paid"] });
      secret = created.secret;
      const endpointId = created.endpoint.id;
      const ping = await tp.webhooks.sendTestEvent(endpointId);
      assert.deepEqual([ping.endpointId, ping.status, ping.trigger, ping.httpStatus], [endpointId, "succeeded", "test", 200]);
      await arrived((e) => e.event === "ping" && e.data.endpoint_id === endpointId);
      const session = await tp.sessions.create({ gameId: GAME, userId: player(), item: ITEM });
      await tp.sandbox.paySession(session.id);
      const paid = (e) => e.event === "session.paid" && e.data.session_id === session.id;
      await arrived(paid);
      // The answer is in; its attempt is recorded a moment later.
      let attempts = await tp.webhooks.listDeliveryAttempts({ endpointId, limit: 1 });
      for (let i = 0; i < 200 && attempts.total < 2; i++) {
        await new Promise((r) => setTimeout(r, 50));
        attempts = await tp.webhooks.listDeliveryAttempts({ endpointId, limit: 1 });
      }
      assert.ok(attempts.total >= 2 && attempts.data.length === 1 && attempts.hasMore,
        `total ${attempts.total}, ${attempts.data.length} on the page, hasMore ${attempts.hasMore}`);
      assert.ok((await attempts.all()).some((a) => a.trigger === "scheduled" && a.status === "succeeded"));
      const replay = await tp.webhooks.replayEvents({ endpointId, types: ["session.paid"], from: since });
      assert.ok(replay.replayed >= 1);
      await arrived(paid, 2);
      assert.equal(new Set(received.filter(paid).map((e) => e.id)).size, 1, "a replay carries the same event id");
      await tp.webhooks.deleteEndpoint(endpointId);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  for (const failFirst of ["before", "after"]) {
    test(`a 503 (${failFirst} the work) is retried with the same Idempotency-Key`, async () => {
      const p = await proxy(failFirst);
      try {
        const tp = client({ baseUrl: p.url });
        const created = await tp.sessions.create({ gameId: GAME, userId: player(), item: ITEM });
        assert.equal(p.requests.length, 2);
        const [one, two] = p.requests.map((r) => r.headers["idempotency-key"]);
        assert.ok(one && one === two, `${one} / ${two}`);
        assert.equal(p.requests[0].body, p.requests[1].body);
        assert.equal((await client().sessions.get(created.id)).id, created.id);
        const sessions = await client().sessions.list({ userId: JSON.parse(p.requests[0].body).userId });
        assert.equal(sessions.total, 1, "the retry created nothing more");
      } finally {
        await p.close();
      }
    });
  }

  test("a caller's Idempotency-Key replays; another body under it is refused", async () => {
    const tp = client();
    const key = `order-${randomUUID()}`;
    const userId = player();
    const one = await tp.sessions.create({ gameId: GAME, userId, item: ITEM }, { idempotencyKey: key });
    const two = await tp.sessions.create({ gameId: GAME, userId, item: ITEM }, { idempotencyKey: key });
    assert.equal(one.id, two.id);
    await assert.rejects(
      tp.sessions.create({ gameId: GAME, userId, item: { ...ITEM, price: 500 } }, { idempotencyKey: key }),
      (e) => e instanceof InvalidRequestError && e.reason === "idempotency_key_reused",
    );
  });

  test("4xx answers are not retried and reads carry no Idempotency-Key", async () => {
    const p = await proxy(null);
    try {
      const tp = client({ baseUrl: p.url });
      await assert.rejects(tp.sessions.create({ gameId: GAME, userId: player(), item: { ...ITEM, currency: "XXQ" } }), (e) => e.reason === "invalid_currency");
      assert.equal(p.requests.length, 1);
      await assert.rejects(tp.sessions.get("sess_01jwbq1m9ef8j3vq0x5w2k7r4t"), NotFoundError);
      assert.equal(p.requests.length, 2);
      assert.equal(p.requests[1].headers["idempotency-key"], undefined);
    } finally {
      await p.close();
    }
  });

  test("typed errors for each reason class", async () => {
    const tp = client();
    const cases = [
      [() => new ToffeePay("sk_test_nope", { baseUrl: BASE_URL }).sessions.status("sess_x"), AuthenticationError, "unauthenticated", "unauthenticated"],
      [() => tp.sessions.create({ gameId: "someone_else", userId: "p", item: ITEM }), PermissionDeniedError, "invalid_game_id", "permission_denied"],
      [() => tp.sessions.create({ gameId: GAME, userId: "p", item: { ...ITEM, price: 0 } }), InvalidRequestError, "invalid_price", "invalid_argument"],
      [() => tp.sessions.list({ limit: 251 }), InvalidRequestError, "invalid_limit", "invalid_argument"],
      [() => tp.payments.get("pay_01jwbq1rz3m0c6t9y2d8h5n1kq"), NotFoundError, "not_found", "not_found"],
      [() => new ToffeePay(env.TOFFEEPAY_TEST_LIVE_KEY, { baseUrl: BASE_URL }).sandbox.expireSession("sess_x"), PermissionDeniedError, "sandbox_only", "permission_denied"],
    ];
    for (const [call, Class, reason, code] of cases) {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof Class && e instanceof ToffeePayError, `${reason}: ${e}`);
        assert.equal(e.reason, reason);
        assert.equal(e.code, code);
        assert.ok(e.message && !e.message.startsWith(`${reason}:`), e.message);
        return true;
      });
    }
    const session = await tp.sessions.create({ gameId: GAME, userId: player(), item: ITEM });
    await tp.sandbox.expireSession(session.id);
    await assert.rejects(tp.sandbox.paySession(session.id), (e) => e instanceof FailedPreconditionError && e.reason === "session_expired");
    await assert.rejects(tp.sessions.fulfill(session.id), (e) => e instanceof FailedPreconditionError && e.reason === "session_not_paid");
  });
});

describe("without the server", () => {
  test("a refused connection is retried, then an APIConnectionError", async () => {
    const { server, url } = await listen(() => {});
    await new Promise((r) => server.close(r)); // the port is now closed
    const tp = new ToffeePay("sk_test_x", { baseUrl: url, maxRetries: 1, retryDelayMs: 10 });
    await assert.rejects(tp.sessions.status("sess_x"), (e) => e instanceof APIConnectionError && e.reason === undefined);
  });

  test("the reason comes from the ErrorInfo detail when present, and 5xx is retried", async () => {
    // google.rpc.ErrorInfo{reason: "session_expired", domain: "toffeepay.dev"} as protobuf bytes.
    const info = Buffer.concat([Buffer.from([0x0a, 15]), Buffer.from("session_expired"), Buffer.from([0x12, 13]), Buffer.from("toffeepay.dev")]);
    const seen = [];
    const { server, url } = await listen(async (req, res) => {
      await readBody(req);
      seen.push(req.headers["idempotency-key"]);
      if (seen.length === 1) return res.writeHead(500, { "content-type": "application/json" }).end('{"code":"internal","message":"boom"}');
      res.writeHead(400, { "content-type": "application/json", "x-request-id": "req_1" }).end(
        JSON.stringify({
          code: "failed_precondition",
          message: "the session expired",
          details: [{ type: "google.rpc.ErrorInfo", value: info.toString("base64").replace(/=+$/, "") }],
        }),
      );
    });
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: url, retryDelayMs: 10 });
      await assert.rejects(tp.sandbox.paySession("sess_x"), (e) => {
        assert.ok(e instanceof FailedPreconditionError, String(e));
        assert.equal(e.reason, "session_expired");
        assert.equal(e.message, "the session expired");
        assert.equal(e.requestId, "req_1");
        return true;
      });
      assert.equal(seen.length, 2);
      assert.ok(seen[0] && seen[0] === seen[1]);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  test("refusals are not retried, a Retry-After notwithstanding: their classes", async () => {
    const answers = [
      [409, "aborted", "already_exists: a conflict no retry resolves", ConflictError],
      [413, "resource_exhausted", "request_too_large: the body is over 1 MiB", InvalidRequestError],
      [400, "invalid_argument", "invalid_currency: 'XXX' is not an active ISO 4217 currency code", InvalidRequestError],
    ];
    for (const [status, code, message, Class] of answers) {
      const api = await scripted(() => [status, { code, message }, { "retry-after": "0" }]);
      try {
        const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 10 });
        await assert.rejects(tp.sessions.create({ gameId: "g", userId: "p", item: ITEM }), (e) => {
          assert.ok(e instanceof Class, String(e));
          assert.equal(e.code, code);
          assert.equal(e.reason, message.split(":")[0]);
          return true;
        });
        assert.equal(api.seen.length, 1, message);
      } finally {
        await api.close();
      }
    }
  });
});

// google.rpc.ErrorInfo{reason: "rate_limited", domain: "toffeepay.dev", metadata: {request_id: "req_1"}}
// as protobuf bytes, and the 429 the server answers with it (src/toffeepay_server/api/errors.py).
const RATE_LIMITED_INFO = Buffer.concat([
  Buffer.from([0x0a, 12]), Buffer.from("rate_limited"),
  Buffer.from([0x12, 13]), Buffer.from("toffeepay.dev"),
  Buffer.from([0x1a, 19, 0x0a, 10]), Buffer.from("request_id"), Buffer.from([0x12, 5]), Buffer.from("req_1"),
]);
const rateLimited = (retryAfter) => [
  429,
  {
    code: "resource_exhausted",
    message: `rate_limited: too many requests for this API key, retry in ${retryAfter} s`,
    details: [
      {
        type: "google.rpc.ErrorInfo",
        value: RATE_LIMITED_INFO.toString("base64").replace(/=+$/, ""),
        debug: { reason: "rate_limited", domain: "toffeepay.dev", metadata: { request_id: "req_1" } },
      },
    ],
  },
  retryAfter === undefined ? {} : { "retry-after": String(retryAfter) },
];
const SESSION = { id: "sess_x", status: "pending", userId: "p", gameId: "g" };

/** A server whose n-th answer (0 first) is `answer(n)`: [status, JSON body, headers]; it records each request. */
async function scripted(answer) {
  const seen = [];
  const { server, url } = await listen(async (req, res) => {
    await readBody(req);
    const n = seen.push({ at: performance.now(), key: req.headers["idempotency-key"] }) - 1;
    const [status, body, headers = {}] = answer(n);
    res.writeHead(status, { "content-type": "application/json", "x-request-id": `req_${n + 1}`, ...headers }).end(JSON.stringify(body));
  });
  return { url, seen, close: () => new Promise((r) => server.close(r)) };
}

describe("rate limits (429 rate_limited), as the server answers them", () => {
  test("retried after the Retry-After, with the same Idempotency-Key", async () => {
    const api = await scripted((n) => (n === 0 ? rateLimited(1) : [200, SESSION]));
    try {
      // A first backoff of 1 ms: the wait that follows is the server's.
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 1 });
      const started = performance.now();
      const session = await tp.sandbox.expireSession("sess_x");
      assert.equal(session.id, "sess_x");
      assert.equal(api.seen.length, 2);
      assert.ok(api.seen[0].key && api.seen[0].key === api.seen[1].key, "one Idempotency-Key for both attempts");
      const waited = api.seen[1].at - api.seen[0].at;
      assert.ok(waited >= 990 && waited < 2000, `waited ${waited} ms for a Retry-After of 1 s`);
      assert.ok(performance.now() - started < 2500);
    } finally {
      await api.close();
    }
  });

  test("without a Retry-After, the backoff; reads are retried too", async () => {
    const api = await scripted((n) => (n < 2 ? rateLimited(undefined) : [200, { id: "sess_x", sessionId: "sess_x", status: "paid" }]));
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 100 });
      assert.equal((await tp.sessions.status("sess_x")).status, "paid");
      assert.equal(api.seen.length, 3);
      assert.equal(api.seen[0].key, undefined);
      // 100 ms then 200 ms, each between half and all of it.
      const waits = [api.seen[1].at - api.seen[0].at, api.seen[2].at - api.seen[1].at];
      assert.ok(waits[0] >= 45 && waits[0] < 600 && waits[1] >= 95 && waits[1] < 700, `waits ${waits}`);
    } finally {
      await api.close();
    }
  });

  test("gives up after maxRetries: the RateLimitError of the last answer", async () => {
    const api = await scripted(() => rateLimited(0.1));
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, maxRetries: 2, retryDelayMs: 1 });
      await assert.rejects(tp.sessions.create({ gameId: "g", userId: "p", item: ITEM }), (e) => {
        assert.ok(e instanceof RateLimitError, String(e));
        assert.equal(e.code, "resource_exhausted");
        assert.equal(e.reason, "rate_limited");
        assert.equal(e.message, "too many requests for this API key, retry in 0.1 s");
        assert.equal(e.requestId, "req_3");
        return true;
      });
      assert.equal(api.seen.length, 3);
      assert.equal(new Set(api.seen.map((s) => s.key)).size, 1);
      for (const i of [1, 2]) assert.ok(api.seen[i].at - api.seen[i - 1].at >= 95, "the 0.1 s Retry-After was honoured");
      const none = await scripted(() => rateLimited(0.1));
      try {
        const once = new ToffeePay("sk_test_x", { baseUrl: none.url, maxRetries: 0 });
        await assert.rejects(once.sessions.status("sess_x"), RateLimitError);
        assert.equal(none.seen.length, 1, "maxRetries: 0 turns retries off");
      } finally {
        await none.close();
      }
    } finally {
      await api.close();
    }
  });

  test("a Retry-After over maxRetryAfterMs is not waited for: thrown at once", async () => {
    for (const [retryAfter, options] of [[11, {}], [1, { maxRetryAfterMs: 500 }]]) {
      const api = await scripted(() => rateLimited(retryAfter));
      try {
        const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 1, ...options });
        const started = performance.now();
        await assert.rejects(tp.sessions.status("sess_x"), (e) => e instanceof RateLimitError && e.reason === "rate_limited");
        assert.equal(api.seen.length, 1);
        assert.ok(performance.now() - started < 500);
      } finally {
        await api.close();
      }
    }
    assert.throws(() => new ToffeePay("sk_test_x", { maxRetryAfterMs: -1 }), TypeError);
  });

  test("the call's timeoutMs bounds a Retry-After wait too", async () => {
    const api = await scripted(() => rateLimited(5));
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, timeoutMs: 300 });
      const started = performance.now();
      await assert.rejects(tp.sessions.status("sess_x"), (e) => e instanceof APIConnectionError && e.code === "deadline_exceeded");
      const took = performance.now() - started;
      assert.ok(took >= 250 && took < 2000, `took ${took} ms`);
      assert.equal(api.seen.length, 1);
    } finally {
      await api.close();
    }
  });

  test("a resource_exhausted that is not rate_limited, and other 4xx, are not retried", async () => {
    const api = await scripted(() => [429, { code: "resource_exhausted", message: "quota_exceeded: no more this month" }, { "retry-after": "0" }]);
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 1 });
      await assert.rejects(tp.sessions.status("sess_x"), (e) => e instanceof InvalidRequestError && e.reason === "quota_exceeded");
      assert.equal(api.seen.length, 1);
    } finally {
      await api.close();
    }
  });
});

/** google.rpc.ErrorInfo{reason, domain: "toffeepay.dev"}, as the server's error body carries it. */
function errorInfo(reason) {
  const bytes = Buffer.concat([Buffer.from([0x0a, reason.length]), Buffer.from(reason), Buffer.from([0x12, 13]), Buffer.from("toffeepay.dev")]);
  return [{ type: "google.rpc.ErrorInfo", value: bytes.toString("base64").replace(/=+$/, "") }];
}
// The server's answers (src/toffeepay_server/api/errors.py, api/replay.py, api/guard.py).
const inUse = () => [
  409,
  { code: "aborted", message: "idempotency_key_in_use: a request with this Idempotency-Key is still being processed", details: errorInfo("idempotency_key_in_use") },
];
const requestTimeout = () => [
  408,
  { code: "deadline_exceeded", message: "request_timeout: the request body did not arrive within 10 s of its headers", details: errorInfo("request_timeout") },
];

/** A server answering `status` with a body that is not a Connect error (a proxy's page), then 200. */
async function plain(status, then = SESSION) {
  const seen = [];
  const { server, url } = await listen(async (req, res) => {
    await readBody(req);
    seen.push({ key: req.headers["idempotency-key"] });
    if (seen.length === 1) return res.writeHead(status, { "content-type": "text/html" }).end(`<h1>${status}</h1>`);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(then));
  });
  return { url, seen, close: () => new Promise((r) => server.close(r)) };
}

describe("the retry rule, the Python SDK's: no answer, 408/500/502/503/504, rate_limited, idempotency_key_in_use", () => {
  test("idempotency_key_in_use (409) is retried after the backoff, with the same Idempotency-Key", async () => {
    const api = await scripted((n) => (n === 0 ? inUse() : [200, SESSION]));
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 100 });
      const started = performance.now();
      assert.equal((await tp.sandbox.expireSession("sess_x")).id, "sess_x");
      assert.equal(api.seen.length, 2);
      assert.ok(api.seen[0].key && api.seen[0].key === api.seen[1].key, "one Idempotency-Key for both attempts");
      const waited = api.seen[1].at - api.seen[0].at;
      assert.ok(waited >= 45 && waited < 600, `waited ${waited} ms for a backoff of 50..100 ms`);
      assert.ok(performance.now() - started < 2000);
    } finally {
      await api.close();
    }
  });

  test("idempotency_key_in_use gives up after maxRetries: the ConflictError of the last answer", async () => {
    const api = await scripted(() => inUse());
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, maxRetries: 2, retryDelayMs: 1 });
      await assert.rejects(tp.sessions.create({ gameId: "g", userId: "p", item: ITEM }, { idempotencyKey: "order-1" }), (e) => {
        assert.ok(e instanceof ConflictError, String(e));
        assert.equal(e.code, "aborted");
        assert.equal(e.reason, "idempotency_key_in_use");
        assert.equal(e.requestId, "req_3");
        return true;
      });
      assert.deepEqual(api.seen.map((s) => s.key), ["order-1", "order-1", "order-1"]);
    } finally {
      await api.close();
    }
  });

  test("HTTP 408 (request_timeout) is retried with the same Idempotency-Key; a 408 from a proxy too", async () => {
    const api = await scripted((n) => (n === 0 ? requestTimeout() : [200, SESSION]));
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 1 });
      assert.equal((await tp.sandbox.expireSession("sess_x")).id, "sess_x");
      assert.equal(api.seen.length, 2);
      assert.ok(api.seen[0].key && api.seen[0].key === api.seen[1].key);
    } finally {
      await api.close();
    }
    const proxy408 = await plain(408);
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: proxy408.url, retryDelayMs: 1 });
      assert.equal((await tp.sandbox.expireSession("sess_x")).id, "sess_x");
      assert.equal(proxy408.seen.length, 2);
    } finally {
      await proxy408.close();
    }
  });

  test("500, 502, 503, 504 are retried; 501, 505 and 4xx are not, whatever the body", async () => {
    for (const [status, retried] of [[500, true], [502, true], [503, true], [504, true], [501, false], [505, false], [400, false], [429, false], [409, false]]) {
      const api = await plain(status);
      try {
        const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 1 });
        const call = tp.sandbox.expireSession("sess_x");
        if (retried) assert.equal((await call).id, "sess_x");
        else await assert.rejects(call, ToffeePayError);
        assert.equal(api.seen.length, retried ? 2 : 1, `HTTP ${status}`);
      } finally {
        await api.close();
      }
    }
    // The Connect errors a server answers with: unimplemented (501) is not retried, internal (500) is.
    for (const [status, code, retried] of [[501, "unimplemented", false], [500, "internal", true], [503, "unavailable", true]]) {
      const api = await scripted((n) => (n === 0 ? [status, { code, message: `${code}: x` }] : [200, SESSION]));
      try {
        const tp = new ToffeePay("sk_test_x", { baseUrl: api.url, retryDelayMs: 1 });
        const call = tp.sessions.status("sess_x");
        if (retried) await call;
        else await assert.rejects(call, (e) => e.code === code);
        assert.equal(api.seen.length, retried ? 2 : 1, `${status} ${code}`);
      } finally {
        await api.close();
      }
    }
  });

  test("a connection reset before any answer is retried, with the same Idempotency-Key", async () => {
    const seen = [];
    let always = false;
    const { server, url } = await listen(async (req, res) => {
      await readBody(req);
      seen.push(req.headers["idempotency-key"]);
      if (always || seen.length === 1) return req.socket.destroy();
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(SESSION));
    });
    try {
      const tp = new ToffeePay("sk_test_x", { baseUrl: url, retryDelayMs: 1 });
      assert.equal((await tp.sandbox.expireSession("sess_x")).id, "sess_x");
      assert.equal(seen.length, 2);
      assert.ok(seen[0] && seen[0] === seen[1]);
      // Reset every time: after maxRetries, an APIConnectionError (no answer), not a conflict.
      const once = new ToffeePay("sk_test_x", { baseUrl: url, maxRetries: 1, retryDelayMs: 1 });
      always = true;
      seen.length = 0;
      await assert.rejects(once.sessions.status("sess_x"), (e) => {
        assert.ok(e instanceof APIConnectionError, String(e));
        assert.equal(e.reason, undefined);
        return true;
      });
      assert.equal(seen.length, 2);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
