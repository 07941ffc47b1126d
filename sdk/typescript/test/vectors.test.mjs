// The shared vectors of sdk/testdata, which every ToffeePay SDK must pass.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { LegacyCallback, ReturnToken, SignatureVerificationError, Webhook } from "../dist/index.js";

const load = (name) => JSON.parse(readFileSync(new URL(`../../testdata/${name}`, import.meta.url), "utf8"));

function check(vector, run) {
  if (vector.valid) return run();
  assert.throws(run, (error) => {
    assert.ok(error instanceof SignatureVerificationError, `${vector.name}: ${error}`);
    assert.equal(error.reason, vector.error, `${vector.name}: ${error.message}`);
    return true;
  });
}

const webhooks = load("webhooks.json");
for (const v of webhooks.vectors) {
  test(`webhook: ${v.name}`, () => {
    check(v, () => {
      for (const body of [v.body, Buffer.from(v.body, "utf8")]) {
        const event = Webhook.constructEvent(body, v.header, v.secret, { tolerance: webhooks.tolerance, now: v.now });
        assert.equal(event.id, JSON.parse(v.body).id);
      }
    });
  });
}

const legacy = load("legacy_callbacks.json");
for (const v of legacy.vectors) {
  test(`legacy callback: ${v.name}`, () => {
    check(v, () => {
      const options = { tolerance: legacy.tolerance, now: v.now };
      assert.deepEqual(LegacyCallback.verify(v.fields, v.secret, options), v.fields);
      assert.deepEqual(LegacyCallback.verify(v.body, v.secret, options), v.fields);
      assert.deepEqual(LegacyCallback.verify(new URLSearchParams(v.body), v.secret, options), v.fields);
    });
  });
}

const tokens = load("return_tokens.json");
for (const v of tokens.vectors) {
  test(`return token: ${v.name}`, () => {
    check(v, () => {
      const claims = ReturnToken.verify(v.token, tokens.jwks, { gameId: v.game_id, now: v.now });
      assert.deepEqual(claims, {
        sessionId: v.claims.session_id,
        gameId: v.claims.game_id,
        userId: v.claims.user_id,
        status: v.claims.status,
        iat: v.claims.iat,
        exp: v.claims.exp,
      });
      assert.deepEqual(ReturnToken.verify(v.token, JSON.stringify(tokens.jwks), { gameId: v.game_id, now: v.now }), claims);
    });
  });
}

test("a rotation verifies with either secret given as a list", () => {
  const v = webhooks.vectors.find((x) => x.name.startsWith("rotation"));
  Webhook.constructEvent(v.body, v.header, ["whsec_unrelated", v.secret], { now: v.now });
});
