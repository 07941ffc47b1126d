/**
 * The Connect transport of a client: the API key, one Idempotency-Key per logical call of a
 * mutating RPC, retries of network failures and 5xx answers, and typed errors.
 */
import { randomUUID } from "node:crypto";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { toToffeePayError } from "./errors.js";
import { VERSION } from "./version.js";

export const DEFAULT_BASE_URL = "http://127.0.0.1:8000";
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_RETRIES = 2;

export interface ClientOptions {
  /** Where the ToffeePay API runs. */
  baseUrl?: string;
  /** Milliseconds for a whole call, retries included; default 30 s. */
  timeoutMs?: number;
  /** Further attempts after a network failure or a 5xx answer (never after a 4xx); default 2. */
  maxRetries?: number;
  /** The first backoff in milliseconds (doubling up to 8 s, with jitter); default 500. */
  retryDelayMs?: number;
}

export interface CallOptions {
  /** For mutating calls: your own key (e.g. your order id) instead of a fresh UUID. */
  idempotencyKey?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Answers that may succeed when repeated: no answer at all, or a 5xx. */
const RETRYABLE = new Set([Code.Unavailable, Code.Internal, Code.Unknown, Code.DataLoss]);

export function retryable(error: unknown): boolean {
  return error instanceof ConnectError && RETRYABLE.has(error.code);
}

function retries(maxRetries: number, firstDelayMs: number): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    if (req.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS && !req.header.has("idempotency-key")) {
      // Made once per logical call and sent by every attempt, so the API performs it once.
      req.header.set("idempotency-key", randomUUID());
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return await next(req);
      } catch (error) {
        if (attempt >= maxRetries || !retryable(error) || req.signal.aborted) throw error;
        const backoff = Math.min(firstDelayMs * 2 ** attempt, 8000);
        await new Promise((resolve) => setTimeout(resolve, backoff * (0.5 + Math.random() / 2)));
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
    this.baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${apiKey}`);
      req.header.set("user-agent", `toffeepay-node/${VERSION}`);
      return next(req);
    };
    this.connect = createConnectTransport({
      baseUrl: this.baseUrl,
      httpVersion: "1.1",
      useBinaryFormat: false,
      // Uncompressed, so every retry sends the same bytes under the same Idempotency-Key.
      sendCompression: undefined,
      jsonOptions: { ignoreUnknownFields: true },
      interceptors: [auth, retries(maxRetries, options.retryDelayMs ?? 500)],
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
