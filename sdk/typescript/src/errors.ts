import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** Every API refusal reads "<reason>: <sentence>", e.g. "invalid_currency: ...". */
const REASON = /^([a-z][a-z0-9_]*): ([\s\S]*)$/;
const ERROR_INFO = "google.rpc.ErrorInfo";

/** The Connect code as it is spelled on the wire, e.g. "invalid_argument". */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

export interface ToffeePayErrorInit {
  code?: string;
  reason?: string;
  requestId?: string;
  cause?: unknown;
}

/**
 * Base of every error the client throws.
 *
 * `code` is the Connect code ("invalid_argument"), `reason` the API's reason code
 * ("invalid_currency"; undefined when no answer came from the API), `message` the
 * sentence without the reason prefix, `requestId` the answer's x-request-id.
 */
export class ToffeePayError extends Error {
  readonly code: string;
  readonly reason: string | undefined;
  readonly requestId: string | undefined;

  constructor(message: string, init: ToffeePayErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code ?? "unknown";
    this.reason = init.reason;
    this.requestId = init.requestId;
  }

  override toString(): string {
    const text = this.reason ? `${this.name}: ${this.reason}: ${this.message}` : `${this.name}: ${this.message}`;
    return this.requestId ? `${text} (request id ${this.requestId})` : text;
  }
}

/** No answer from the API: refused connection, reset, DNS failure, timeout. */
export class APIConnectionError extends ToffeePayError {}
/** Missing, unknown or revoked API key (`unauthenticated`). */
export class AuthenticationError extends ToffeePayError {}
/** The key may not do this, e.g. `invalid_game_id` or `sandbox_only`. */
export class PermissionDeniedError extends ToffeePayError {}
/** The request is wrong and retrying it unchanged will not help (`invalid_argument` and its reasons). */
export class InvalidRequestError extends ToffeePayError {}
/** No such object for this key (`not_found`). */
export class NotFoundError extends ToffeePayError {}
/** The object's state does not allow it, e.g. `session_not_pending`. */
export class FailedPreconditionError extends ToffeePayError {}
/** A request with the same Idempotency-Key is still running (`idempotency_key_in_use`). */
export class ConflictError extends ToffeePayError {}
/** Too many requests for this key (`rate_limited`). */
export class RateLimitError extends ToffeePayError {}
/** Anything else the API answered, e.g. `internal` or `unavailable`. */
export class APIError extends ToffeePayError {}

const BY_CODE: Partial<Record<Code, typeof ToffeePayError>> = {
  [Code.Unauthenticated]: AuthenticationError,
  [Code.PermissionDenied]: PermissionDeniedError,
  [Code.InvalidArgument]: InvalidRequestError,
  [Code.OutOfRange]: InvalidRequestError,
  [Code.NotFound]: NotFoundError,
  [Code.FailedPrecondition]: FailedPreconditionError,
  [Code.AlreadyExists]: ConflictError,
  [Code.Aborted]: ConflictError,
};

/** The `reason` of a google.rpc.ErrorInfo detail (field 1), read straight from its bytes. */
export function errorInfoReason(error: ConnectError): string | undefined {
  for (const detail of error.details) {
    if (!("type" in detail) || detail.type !== ERROR_INFO) continue;
    try {
      const reader = new BinaryReader(detail.value);
      while (reader.pos < reader.len) {
        const [field, wireType] = reader.tag();
        if (field === 1 && wireType === WireType.LengthDelimited) return reader.string();
        reader.skip(wireType);
      }
    } catch {
      // A malformed detail: fall back to the message prefix.
    }
  }
  return undefined;
}

/** The SDK error for whatever a call threw (a ConnectError, an abort, a network failure). */
export function toToffeePayError(thrown: unknown): ToffeePayError {
  if (thrown instanceof ToffeePayError) return thrown;
  const error = ConnectError.from(thrown);
  const requestId = error.metadata.get("x-request-id") ?? undefined;
  let message = error.rawMessage;
  let reason = errorInfoReason(error);
  const match = REASON.exec(message);
  if (match) {
    reason ??= match[1];
    if (match[1] === reason) message = match[2];
  }
  const code = codeName(error.code);
  const init = { code, reason, requestId, cause: thrown };
  // No answer: connect-node reports a reset connection as aborted (the API's own aborted,
  // idempotency_key_in_use, always has its reason).
  if (reason === undefined && [Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Aborted].includes(error.code)) {
    return new APIConnectionError(message || "no answer from the API", init);
  }
  if (error.code === Code.ResourceExhausted) {
    return reason === "rate_limited" ? new RateLimitError(message, init) : new InvalidRequestError(message, init);
  }
  const Class = BY_CODE[error.code] ?? APIError;
  return new Class(message, init);
}

/** Raised by the verifiers: the request or token is not provably from ToffeePay, or not recent. */
export class SignatureVerificationError extends Error {
  /**
   * Webhooks and legacy callbacks: `malformed_header`, `bad_signature`, `stale_timestamp`; legacy
   * callbacks also `unknown_field` and `malformed_value` (a raw `&` or `=`). Return tokens: `malformed`, `unknown_key`,
   * `bad_signature`, `expired`, `wrong_game`.
   */
  readonly reason: string;

  constructor(message: string, reason: string) {
    super(message);
    this.name = "SignatureVerificationError";
    this.reason = reason;
  }
}
