/**
 * The return token: the `token` ToffeePay adds to `return_url`, a compact JWS (EdDSA over
 * Ed25519) whose keys are published at `<base URL>/.well-known/jwks.json`. It lets a game
 * show the outcome at once; granting the item still follows the webhook or GetSessionStatus.
 */
import { createPublicKey, verify as verifySignature } from "node:crypto";
import { SignatureVerificationError } from "./errors.js";

export interface Jwk {
  kty: string;
  crv?: string;
  x?: string;
  kid?: string;
  alg?: string;
  use?: string;
}

export interface Jwks {
  keys: Jwk[];
}

export interface ReturnClaims {
  sessionId: string;
  gameId: string;
  userId: string;
  /** The session's status when the player was sent back: paid, failed, cancelled. */
  status: string;
  /** Issued at, unix seconds. */
  iat: number;
  /** Expires at, unix seconds. */
  exp: number;
}

export interface ReturnTokenOptions {
  /** Your game; a token for another game is refused. */
  gameId: string;
  /** The time to verify at; default now. */
  now?: Date | number;
  /** Seconds of clock skew allowed on `exp` and `iat`; default 0. */
  leeway?: number;
}

const fail = (message: string, reason: string): never => {
  throw new SignatureVerificationError(message, reason);
};

function decodeJson(part: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    if (value !== null && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  return fail(`the token's ${what} is not base64url JSON`, "malformed");
}

export const ReturnToken = {
  /**
   * Verifies `token` with the installation's JWKS (the JSON text or the parsed object) and
   * returns its claims. Throws SignatureVerificationError (`malformed`, `unknown_key`,
   * `bad_signature`, `expired`, `wrong_game`).
   */
  verify(token: string, jwks: Jwks | string, options: ReturnTokenOptions): ReturnClaims {
    if (!options?.gameId) throw new TypeError("options.gameId is required");
    const parts = typeof token === "string" ? token.split(".") : [];
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || !parts[2]) {
      fail("not a compact JWS (header.payload.signature)", "malformed");
    }
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = decodeJson(headerPart, "header");
    if (header.alg !== "EdDSA") fail(`alg ${String(header.alg)} is not EdDSA`, "malformed");
    const set: Jwks = typeof jwks === "string" ? (JSON.parse(jwks) as Jwks) : jwks;
    const jwk = (set?.keys ?? []).find((k) => k.kid === header.kid);
    if (!jwk) return fail(`no key with kid ${String(header.kid)} in the JWKS`, "unknown_key");
    if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.x) fail(`key ${jwk.kid} is not an Ed25519 key`, "unknown_key");
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: jwk.x as string }, format: "jwk" });
    const signed = Buffer.from(`${headerPart}.${payloadPart}`);
    if (!verifySignature(null, signed, key, Buffer.from(signaturePart, "base64url"))) {
      fail("the signature does not match the token", "bad_signature");
    }
    const claims = decodeJson(payloadPart, "payload");
    const text = (name: string): string =>
      typeof claims[name] === "string" ? (claims[name] as string) : fail(`claim ${name} is missing`, "malformed");
    const seconds = (name: string): number =>
      Number.isInteger(claims[name]) ? (claims[name] as number) : fail(`claim ${name} is missing`, "malformed");
    const result: ReturnClaims = {
      sessionId: text("session_id"),
      gameId: text("game_id"),
      userId: text("user_id"),
      status: text("status"),
      iat: seconds("iat"),
      exp: seconds("exp"),
    };
    const now = options.now === undefined ? Date.now() / 1000 : options.now instanceof Date ? options.now.getTime() / 1000 : options.now;
    const leeway = options.leeway ?? 0;
    if (now >= result.exp + leeway) fail(`the token expired at ${result.exp}`, "expired");
    if (result.iat > now + leeway + 60) fail(`the token is issued in the future (${result.iat})`, "malformed");
    if (result.gameId !== options.gameId) fail(`the token is for game ${result.gameId}, not ${options.gameId}`, "wrong_game");
    return result;
  },
};
