/**
 * The Connect transport of a client: the API key, one Idempotency-Key per logical call of a
 * mutating RPC, retries (the Python SDK's rule: no answer, HTTP 408/500/502/503/504, rate_limited,
 * idempotency_key_in_use), and typed errors.
 */
import { randomUUID } from "node:crypto";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { validateReadWriteMaxBytes, type UniversalClientFn } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { compressionBrotli, compressionGzip, createNodeHttpClient } from "@connectrpc/connect-node";
import { RateLimitError, toToffeePayError } from "./errors.js";
import { VERSION } from "./version.js";

export const DEFAULT_BASE_URL = "http://127.0.0.1:8000";
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_RETRIES = 2;
/** The longest Retry-After a retry waits for; a server asking for longer gets its error thrown at once. */
export const DEFAULT_MAX_RETRY_AFTER_MS = 10_000;

export interface ClientOptions {
  /** Where the ToffeePay API runs. */
  baseUrl?: string;
  /** Milliseconds for a whole call, retries included; default 30 s. */
  timeoutMs?: number;
  /**
   * Further attempts after a network failure, an HTTP 408, 500, 502, 503 or 504 answer,
   * `rate_limited` (429) or `idempotency_key_in_use` (409); never after another answer. Default 2.
   */
  maxRetries?: number;
  /** The first backoff in milliseconds (doubling up to 8 s, with jitter); default 500. */
  retryDelayMs?: number;
  /**
   * The longest wait a server's Retry-After gets before a retry, in milliseconds; an answer asking
   * for longer is thrown at once rather than block the caller. Default 10 000.
   */
  maxRetryAfterMs?: number;
}

export interface CallOptions {
  /** For mutating calls: your own key (e.g. your order id) instead of a fresh UUID. */
  idempotencyKey?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** HTTP statuses whose call may succeed when repeated (not 501: no retry implements a method). */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 500, 502, 503, 504]);
/** What connect-node reports when no answer arrived: refused, reset (aborted), DNS, a broken socket. */
const NO_ANSWER = new Set([Code.Unavailable, Code.Aborted, Code.Internal, Code.Unknown, Code.DataLoss]);

/**
 * Whether the same call may succeed later, the Python SDK's rule: no answer (`httpStatus`
 * undefined), an HTTP 408, 500, 502, 503 or 504, `rate_limited` or `idempotency_key_in_use`.
 */
export function retryable(error: unknown, httpStatus: number | undefined): boolean {
  if (!(error instanceof ConnectError)) return false;
  const typed = toToffeePayError(error);
  if (typed instanceof RateLimitError || typed.reason === "idempotency_key_in_use") return true;
  return httpStatus === undefined ? NO_ANSWER.has(error.code) : RETRY_STATUSES.has(httpStatus);
}

/** The answer's Retry-After in milliseconds; undefined without one (the HTTP-date form is ignored). */
export function retryAfterMs(error: unknown): number | undefined {
  const value = error instanceof ConnectError ? error.metadata.get("retry-after")?.trim() : undefined;
  if (!value) return undefined;
  const seconds = Number(value);
  return Number.isNaN(seconds) ? undefined : seconds * 1000;
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

interface RetryPolicy {
  maxRetries: number;
  firstDelayMs: number;
  maxRetryAfterMs: number;
}

/** Milliseconds to wait before retry number `retry` (0 first), or undefined to give up. */
function delay(policy: RetryPolicy, retry: number, error: unknown, httpStatus: number | undefined): number | undefined {
  if (retry >= policy.maxRetries || !retryable(error, httpStatus)) return undefined;
  const asked = retryAfterMs(error);
  if (asked !== undefined) return asked <= policy.maxRetryAfterMs ? Math.max(0, asked) : undefined;
  const backoff = Math.min(policy.firstDelayMs * 2 ** retry, 8000);
  return backoff * (0.5 + Math.random() / 2);
}

/**
 * The HTTP status of the last answer to each call, by the call's request headers (the object
 * connect-es hands both to the interceptors and to the HTTP client); absent when none arrived.
 * A ConnectError does not carry the status, and the retry rule needs it (a 501 is not retried).
 */
type Statuses = WeakMap<Headers, number>;

function recordingStatus(client: UniversalClientFn, statuses: Statuses): UniversalClientFn {
  return async (request) => {
    const response = await client(request);
    statuses.set(request.header, response.status);
    return response;
  };
}

function retries(policy: RetryPolicy, statuses: Statuses): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    if (req.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS && !req.header.has("idempotency-key")) {
      // Made once per logical call and sent by every attempt, so the API performs it once.
      req.header.set("idempotency-key", randomUUID());
    }
    for (let retry = 0; ; retry++) {
      statuses.delete(req.header);
      try {
        return await next(req);
      } catch (error) {
        const wait = req.signal.aborted ? undefined : delay(policy, retry, error, statuses.get(req.header));
        if (wait === undefined) throw error;
        await sleep(wait, req.signal);
        // The call's timeout or the caller's signal ended the wait (connect-es reports which).
        if (req.signal.aborted) throw error;
      }
    }
  };
}

export class ApiTransport {
  readonly baseUrl: string;
  readonly connect: Transport;
  private readonly timeoutMs: number;

  constructor(apiKey: string, options: ClientOptions = {}) {
    if (!apiKey) throw new TypeError("apiKey is required, e.g. new ToffeePay('sk_test_...')");
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new TypeError("maxRetries must be 0 or more");
    const maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
    if (!(maxRetryAfterMs >= 0)) throw new TypeError("maxRetryAfterMs must be 0 or more");
    this.baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${apiKey}`);
      req.header.set("user-agent", `toffeepay-node/${VERSION}`);
      return next(req);
    };
    // connect-node's createConnectTransport with its defaults, over an HTTP client that records
    // each answer's status for the retry rule.
    const statuses: Statuses = new WeakMap();
    this.connect = createTransport({
      baseUrl: this.baseUrl,
      httpClient: recordingStatus(createNodeHttpClient({ httpVersion: "1.1" }), statuses),
      useBinaryFormat: false,
      // Uncompressed, so every retry sends the same bytes under the same Idempotency-Key.
      sendCompression: null,
      acceptCompression: [compressionGzip, compressionBrotli],
      ...validateReadWriteMaxBytes(undefined, undefined, undefined),
      jsonOptions: { ignoreUnknownFields: true },
      interceptors: [auth, retries({ maxRetries, firstDelayMs: options.retryDelayMs ?? 500, maxRetryAfterMs }, statuses)],
    });
  }

  /** A generated-service client whose every method throws ToffeePayError subclasses. */
  service<S extends DescService>(service: S): Client<S> {
    const client = createClient(service, this.connect);
    return new Proxy(client, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        return async (...args: unknown[]) => {
          try {
            return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          } catch (error) {
            throw toToffeePayError(error);
          }
        };
      },
    });
  }

  /** Call options for connect-es from ours. */
  options(options: CallOptions = {}): { timeoutMs: number; signal?: AbortSignal; headers?: Record<string, string> } {
    return {
      timeoutMs: options.timeoutMs ?? this.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.idempotencyKey ? { headers: { "idempotency-key": options.idempotencyKey } } : {}),
    };
  }
}
