// Writes the shared verification vectors every SDK must pass: signed webhooks, legacy
// callbacks and return tokens, valid and invalid. Deterministic (fixed secrets, times and
// Ed25519 seed), so `node sdk/testdata/generate.mjs` leaves the committed files unchanged.
import { createHmac, createPrivateKey, createPublicKey, sign } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const NOW = 1780000000; // 2026-05-28T20:26:40Z: every vector is checked "at" this time.
const SECRET = "whsec_c2RrLXRlc3QtdmVjdG9ycy1jdXJyZW50LXNlY3JldA";
const OLD_SECRET = "whsec_c2RrLXRlc3QtdmVjdG9ycy1wcmV2aW91cy1zZWNyZXQ";
const OTHER_SECRET = "whsec_c29tZWJvZHktZWxzZXMtZW5kcG9pbnQtc2VjcmV0";

const hmac = (secret, message) => createHmac("sha256", secret).update(message).digest("hex");
const write = (name, value) => writeFileSync(join(here, name), JSON.stringify(value, null, 2) + "\n");

// Webhooks: X-ToffeePay-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>.
const body = JSON.stringify({
  id: "0196f0b2-7c1e-7a4e-9d2b-3f5a1c2e4b6d",
  event: "payment.succeeded",
  timestamp: "2026-05-28T20:26:38Z",
  mode: "sandbox",
  session_id: "sess_01jwbq1m9ef8j3vq0x5w2k7r4t",
  user_id: "player_42",
  game_id: "space_shooter",
  status: "paid",
  sequence: 2,
  previous_status: "pending",
  item: { title: "50 Gold Coins", price: 499, currency: "USD" },
  data: {
    payment_id: "pay_01jwbq1rz3m0c6t9y2d8h5n1kq",
    session_id: "sess_01jwbq1m9ef8j3vq0x5w2k7r4t",
    status: "succeeded",
    amount: 499,
    currency: "USD",
    method: "card",
    game_id: "space_shooter",
    user_id: "player_42",
  },
});
const header = (t, ...secrets) => [`t=${t}`, ...secrets.map((s) => `v1=${hmac(s, `${t}.${body}`)}`)].join(",");
const ok = (name, extra) => ({ name, secret: SECRET, body, now: NOW, valid: true, ...extra });
const bad = (name, error, extra) => ({ name, secret: SECRET, body, now: NOW, valid: false, error, ...extra });
write("webhooks.json", {
  description:
    "Signed JSON webhooks. Verify `body` (the exact bytes, UTF-8) against `header` (X-ToffeePay-Signature) " +
    "with `secret` and a tolerance of `tolerance` seconds at the unix time `now`.",
  tolerance: 300,
  vectors: [
    ok("valid", { header: header(NOW - 2, SECRET), event_id: "0196f0b2-7c1e-7a4e-9d2b-3f5a1c2e4b6d" }),
    ok("valid at the edge of the tolerance", { header: header(NOW - 300, SECRET) }),
    ok("rotation: two signatures, verified with the new secret", { header: header(NOW - 2, OLD_SECRET, SECRET) }),
    ok("rotation: two signatures, verified with the old secret", {
      header: header(NOW - 2, OLD_SECRET, SECRET),
      secret: OLD_SECRET,
    }),
    bad("tampered body", "bad_signature", { header: header(NOW - 2, SECRET), body: body.replace("499", "4990") }),
    bad("body re-encoded with spaces", "bad_signature", {
      header: header(NOW - 2, SECRET),
      body: JSON.stringify(JSON.parse(body), null, 1),
    }),
    bad("added trailing newline", "bad_signature", { header: header(NOW - 2, SECRET), body: body + "\n" }),
    bad("wrong secret", "bad_signature", { header: header(NOW - 2, OTHER_SECRET) }),
    bad("stale timestamp", "stale_timestamp", { header: header(NOW - 301, SECRET) }),
    bad("timestamp in the future", "stale_timestamp", { header: header(NOW + 301, SECRET) }),
    bad("timestamp changed after signing", "bad_signature", {
      header: header(NOW - 2, SECRET).replace(`t=${NOW - 2}`, `t=${NOW - 1}`),
    }),
    bad("no v1 signature", "malformed_header", { header: `t=${NOW - 2}` }),
    bad("no timestamp", "malformed_header", { header: `v1=${hmac(SECRET, `${NOW - 2}.${body}`)}` }),
    bad("empty header", "malformed_header", { header: "" }),
  ],
});

// Legacy callbacks: hash = hex HMAC-SHA256(secret, the other fields as k=v sorted by key, joined by &).
const legacyHash = (fields, secret) =>
  hmac(
    secret,
    Object.keys(fields)
      .filter((k) => k !== "hash")
      .sort()
      .map((k) => `${k}=${fields[k]}`)
      .join("&"),
  );
const signed = (fields, secret = SECRET) => ({ ...fields, hash: legacyHash(fields, secret) });
const paid = {
  transaction_id: "pay_01jwbq1rz3m0c6t9y2d8h5n1kq",
  status: "PAID",
  amount: "499",
  paid_amount: "499",
  currency: "USD",
  site_id: "toffeepay",
  game_id: "space_shooter",
  user_id: "player%26admin%3D1",
  transaction_token: "sess_01jwbq1m9ef8j3vq0x5w2k7r4t",
  custom_parameters: '{"note":"a\\u0026b\\u003dc","order":"A-17"}',
  timestamp: String(NOW - 5),
};
// The forgery: the same signed string split at other `&`s. Moving `custom_parameters` into the
// value of `currency` keeps the string (and so the hash) intact; only the rule that no value
// holds a raw `&` or `=` catches it.
const genuine = signed(paid);
const forged = { ...genuine, currency: `USD&custom_parameters=${paid.custom_parameters}` };
delete forged.custom_parameters;
const { timestamp: _, ...withoutTimestamp } = paid;
const form = (fields) => new URLSearchParams(fields).toString();
const legacy = (name, fields, valid, error, extra) => ({
  name,
  secret: SECRET,
  fields,
  body: form(fields),
  now: NOW,
  valid,
  ...(valid ? {} : { error }),
  ...extra,
});
write("legacy_callbacks.json", {
  description:
    "Legacy form callbacks (format legacy_form). Verify `fields` (or the urlencoded `body`) with `secret` " +
    "and a tolerance of `tolerance` seconds on the `timestamp` field at the unix time `now`.",
  tolerance: 300,
  vectors: [
    legacy("valid", genuine, true),
    legacy("valid cancelled session", signed({ ...paid, status: "CANCELLED", paid_amount: "0" }), true),
    legacy("tampered amount", { ...genuine, paid_amount: "4990" }, false, "bad_signature"),
    legacy("wrong secret", signed(paid, OTHER_SECRET), false, "bad_signature"),
    legacy("forged by moving a separator into a value", forged, false, "malformed_value"),
    legacy("stale timestamp", signed({ ...paid, timestamp: String(NOW - 301) }), false, "stale_timestamp"),
    legacy("unknown field", signed({ ...paid, bonus_coins: "1000" }), false, "unknown_field"),
    legacy("missing hash", paid, false, "malformed_header"),
    legacy("missing timestamp", signed(withoutTimestamp), false, "malformed_header"),
  ],
});

// Return tokens: compact JWS, EdDSA over Ed25519, keys in a JWKS by kid.
const keyFromSeed = (hex) =>
  createPrivateKey({ key: Buffer.from("302e020100300506032b657004220420" + hex, "hex"), format: "der", type: "pkcs8" });
const KEY = keyFromSeed("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
const OTHER_KEY = keyFromSeed("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
const KID = "2026-05-a";
const jwk = (key, kid) => ({ ...createPublicKey(key).export({ format: "jwk" }), kid, alg: "EdDSA", use: "sig" });
const jwks = { keys: [jwk(KEY, KID), jwk(OTHER_KEY, "2026-04-old")] };
const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
const jws = (claims, { key = KEY, kid = KID, alg = "EdDSA" } = {}) => {
  const signingInput = `${b64url({ alg, kid, typ: "JWT" })}.${b64url(claims)}`;
  return `${signingInput}.${sign(null, Buffer.from(signingInput), key).toString("base64url")}`;
};
const claims = {
  session_id: "sess_01jwbq1m9ef8j3vq0x5w2k7r4t",
  game_id: "space_shooter",
  user_id: "player_42",
  status: "paid",
  iat: NOW - 30,
  exp: NOW - 30 + 600,
};
const token = jws(claims);
const [h, , s] = token.split(".");
const rt = (name, tok, valid, error, extra) => ({
  name,
  token: tok,
  game_id: "space_shooter",
  now: NOW,
  valid,
  ...(valid ? { claims } : { error }),
  ...extra,
});
write("return_tokens.json", {
  description:
    "Return tokens (the `token` added to return_url). Verify `token` with `jwks` for `game_id` at the unix time `now`.",
  jwks,
  vectors: [
    rt("valid", token, true),
    rt("altered claims", `${h}.${b64url({ ...claims, status: "paid", user_id: "player_43" })}.${s}`, false, "bad_signature"),
    rt("other game", token, false, "wrong_game", { game_id: "other_game" }),
    rt("expired", token, false, "expired", { now: claims.exp }),
    rt("signed by the other key under this kid", jws(claims, { key: OTHER_KEY }), false, "bad_signature"),
    rt("unknown kid", jws(claims, { kid: "nope" }), false, "unknown_key"),
    rt("alg none", `${b64url({ alg: "none", kid: KID, typ: "JWT" })}.${b64url(claims)}.`, false, "malformed"),
    rt("not a JWS", "not-a-token", false, "malformed"),
  ],
});
