/**
 * Verifying what ToffeePay sends: signed JSON webhooks and legacy form callbacks.
 *
 * `X-ToffeePay-Signature` is `t=<unix seconds>,v1=<hex>`, each `v1` being HMAC-SHA256 keyed
 * with the endpoint secret (the whole `whsec_...` string) over `<t>.` + the raw body. During a
 * secret rotation the header carries one `v1` per valid secret; any one matching is enough.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { SignatureVerificationError } from "./errors.js";

export const DEFAULT_TOLERANCE = 300;
export const SIGNATURE_HEADER = "x-toffeepay-signature";

export type Secret = string | readonly string[];

/** The X-ToffeePay-Signature header as a framework gives it (Node's `req.headers[...]` included). */
export type SignatureHeaderValue = string | readonly string[] | null | undefined;

export interface VerifyOptions {
  /** Seconds either way of now; default 300. */
  tolerance?: number;
  /** The time to verify at (tests and replays); default the current time. */
  now?: Date | number;
}

/** A webhook event: `{id, event, timestamp, mode, data}`, plus the session fields of older integrations. */
export interface WebhookEvent {
  id: string;
  event: string;
  timestamp: string;
  mode: "sandbox" | "live";
  data: Record<string, unknown>;
  [field: string]: unknown;
}

function secrets(secret: Secret): string[] {
  const found = typeof secret === "string" ? [secret] : [...secret];
  if (found.length === 0 || !found.every((s) => typeof s === "string" && s.length > 0)) {
    throw new TypeError("secret must be a non-empty string (or an array of them during a rotation)");
  }
  return found;
}

function nowSeconds(now: Date | number | undefined): number {
  if (now === undefined) return Date.now() / 1000;
  return now instanceof Date ? now.getTime() / 1000 : now;
}

function hmacHex(secret: string, message: Uint8Array | string): string {
  return createHmac("sha256", secret).update(message).digest("hex");
}

/** Constant-time check that any `given` equals any `expected` (all pairs compared). */
function anyEqual(expected: string[], given: string[]): boolean {
  let matched = false;
  for (const want of expected) {
    for (const got of given) {
      const a = Buffer.from(want);
      const b = Buffer.from(got);
      matched = (a.length === b.length && timingSafeEqual(a, b)) || matched;
    }
  }
  return matched;
}

function bytes(body: string | Uint8Array): Buffer {
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

export const WebhookSignature = {
  /** The hex `v1` for this body and timestamp. */
  compute(body: string | Uint8Array, timestamp: number, secret: string): string {
    return hmacHex(secret, Buffer.concat([Buffer.from(`${timestamp}.`), bytes(body)]));
  },

  /** `t` and every `v1` of the header; throws SignatureVerificationError when malformed. */
  parseHeader(header: SignatureHeaderValue): { timestamp: number; signatures: string[] } {
    let timestamp: number | undefined;
    const signatures: string[] = [];
    const text: string = typeof header === "string" ? header : header ? header.join(",") : "";
    for (const part of text.split(",")) {
      const at = part.indexOf("=");
      if (at < 0) continue;
      const key = part.slice(0, at).trim();
      const value = part.slice(at + 1).trim();
      if (key === "t" && timestamp === undefined && /^[0-9]+$/.test(value)) timestamp = Number(value);
      else if (key === "v1" && value) signatures.push(value.toLowerCase());
    }
    if (timestamp === undefined || signatures.length === 0) {
      throw new SignatureVerificationError(
        "unable to extract a timestamp and v1 signatures from the header (expected t=<unix seconds>,v1=<hex>)",
        "malformed_header",
      );
    }
    return { timestamp, signatures };
  },

  /** Checks the header against the raw body; throws SignatureVerificationError. */
  verifyHeader(body: string | Uint8Array, header: SignatureHeaderValue, secret: Secret, options: VerifyOptions = {}): void {
    const { timestamp, signatures } = WebhookSignature.parseHeader(header);
    const expected = secrets(secret).map((s) => WebhookSignature.compute(body, timestamp, s));
    if (!anyEqual(expected, signatures)) {
      throw new SignatureVerificationError(
        "no v1 signature matches the expected signature for this payload (check the secret, and that you pass the raw request body)",
        "bad_signature",
      );
    }
    const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
    const skew = nowSeconds(options.now) - timestamp;
    if (Math.abs(skew) > tolerance) {
      throw new SignatureVerificationError(
        `timestamp ${timestamp} is ${Math.round(Math.abs(skew))} s from now, more than the tolerance of ${tolerance} s (replayed or clock skew)`,
        "stale_timestamp",
      );
    }
  },
};

export const Webhook = {
  /**
   * Verifies a JSON webhook and returns its event. `rawBody` must be the exact bytes received
   * (not re-serialised JSON); pass both secrets during a rotation. Throws
   * SignatureVerificationError. Events can repeat and arrive out of order: deduplicate by `id`.
   */
  constructEvent(
    rawBody: string | Uint8Array,
    signatureHeader: SignatureHeaderValue,
    secret: Secret,
    options: VerifyOptions = {},
  ): WebhookEvent {
    WebhookSignature.verifyHeader(rawBody, signatureHeader, secret, options);
    const event: unknown = JSON.parse(typeof rawBody === "string" ? rawBody : bytes(rawBody).toString("utf8"));
    if (event === null || typeof event !== "object" || Array.isArray(event)) {
      throw new SignatureVerificationError("the webhook body is not a JSON object", "malformed_header");
    }
    return event as WebhookEvent;
  },
};

/** The fields a legacy callback carries; any other field is refused. */
export const LEGACY_FIELDS: readonly string[] = [
  "transaction_id",
  "status",
  "amount",
  "paid_amount",
  "currency",
  "site_id",
  "game_id",
  "user_id",
  "transaction_token",
  "custom_parameters",
  "timestamp",
  "hash",
];

export type LegacyFields = Record<string, string>;

function legacyPairs(fields: LegacyFields | URLSearchParams | string | Uint8Array): [string, string][] {
  if (typeof fields === "string" || fields instanceof Uint8Array) {
    const text = typeof fields === "string" ? fields : bytes(fields).toString("utf8");
    return [...new URLSearchParams(text)];
  }
  if (fields instanceof URLSearchParams) return [...fields];
  return Object.entries(fields).map(([k, v]) => [k, String(v)]);
}

export const LegacyCallback = {
  /** Hex HMAC-SHA256 of the fields but `hash`, as `k=v` sorted by key, joined by `&`. */
  computeHash(fields: LegacyFields, secret: string): string {
    const message = Object.keys(fields)
      .filter((k) => k !== "hash")
      .sort()
      .map((k) => `${k}=${fields[k]}`)
      .join("&");
    return hmacHex(secret, message);
  },

  /**
   * Checks a legacy form callback and returns its fields: the parsed form (an object or
   * URLSearchParams) or the raw urlencoded body. Refuses unknown fields and values holding a
   * raw `&` or `=` (the signed string could be split another way), then checks the hash, then
   * that `timestamp` is within the tolerance. Throws SignatureVerificationError. Callbacks can
   * repeat: deduplicate by (`transaction_id`, `status`).
   */
  verify(
    fields: LegacyFields | URLSearchParams | string | Uint8Array,
    secret: Secret,
    options: VerifyOptions = {},
  ): LegacyFields {
    const found: LegacyFields = {};
    for (const [key, value] of legacyPairs(fields)) {
      if (Object.hasOwn(found, key)) throw new SignatureVerificationError(`field ${key} appears twice`, "malformed_header");
      found[key] = value;
    }
    const given = (found.hash ?? "").toLowerCase();
    if (!given) throw new SignatureVerificationError("the callback has no hash field", "malformed_header");
    const unknown = Object.keys(found).filter((k) => !LEGACY_FIELDS.includes(k));
    if (unknown.length > 0) {
      throw new SignatureVerificationError(`unknown field ${unknown.sort().join(", ")}: ToffeePay does not send it`, "unknown_field");
    }
    for (const [key, value] of Object.entries(found)) {
      if (value.includes("&") || value.includes("=")) {
        throw new SignatureVerificationError(
          `field ${key} holds a raw & or =, which ToffeePay never sends (the signed string could be split another way)`,
          "malformed_value",
        );
      }
    }
    const expected = secrets(secret).map((s) => LegacyCallback.computeHash(found, s));
    if (!anyEqual(expected, [given])) {
      throw new SignatureVerificationError("hash does not match the callback's fields", "bad_signature");
    }
    const raw = found.timestamp ?? "";
    if (!/^[0-9]+$/.test(raw)) {
      throw new SignatureVerificationError("the callback has no unix-seconds timestamp field", "malformed_header");
    }
    const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
    const skew = nowSeconds(options.now) - Number(raw);
    if (Math.abs(skew) > tolerance) {
      throw new SignatureVerificationError(
        `timestamp ${raw} is ${Math.round(Math.abs(skew))} s from now, more than the tolerance of ${tolerance} s`,
        "stale_timestamp",
      );
    }
    return found;
  },
};
