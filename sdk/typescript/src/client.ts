/** The client: `new ToffeePay(apiKey, { baseUrl })` and its namespaces, one method per RPC. */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { HealthService } from "./gen/pay/v1/health_pb.js";
import {
  PaymentService,
  type CreateSessionRequestSchema,
  type ListDisputesRequestSchema,
  type ListPaymentsRequestSchema,
  type ListRefundsRequestSchema,
  type ListSessionsRequestSchema,
} from "./gen/pay/v1/payment_pb.js";
import type { Dispute, Payment, Refund, Session } from "./gen/pay/v1/resources_pb.js";
import { SandboxService } from "./gen/pay/v1/sandbox_pb.js";
import {
  WebhookService,
  type CreateEndpointRequestSchema,
  type DeliveryAttempt,
  type Event,
  type ListDeliveryAttemptsRequestSchema,
  type ReplayEventsRequestSchema,
  type ListEventsRequestSchema,
  type UpdateEndpointRequestSchema,
} from "./gen/pay/v1/webhook_pb.js";
import { Page } from "./pagination.js";
import { ApiTransport, type CallOptions, type ClientOptions } from "./transport.js";

type Dates<T> = T extends object
  ? { [K in keyof T]: K extends "expiresAt" | "from" | "to" ? T[K] | Date : T[K] }
  : T;
/** The fields of a request message, timestamps also as Dates. */
export type Params<S extends DescMessage> = Dates<Exclude<MessageInitShape<S>, { $typeName: string }>>;
type ListParams<S extends DescMessage> = Omit<Params<S>, "offset"> & { offset?: number };

/** The params with every Date turned into a Timestamp. */
function dated<P extends object>(params: P): { [K in keyof P]: Exclude<P[K], Date> } {
  const out: Record<string, unknown> = { ...(params as Record<string, unknown>) };
  for (const [key, value] of Object.entries(out)) {
    if (value instanceof Date) out[key] = timestampFromDate(value) satisfies Timestamp;
  }
  return out as { [K in keyof P]: Exclude<P[K], Date> };
}

interface ListAnswer {
  total: number;
  hasMore: boolean;
}

/** One page of a list RPC; the page fetches the next ones the same way. */
async function page<T, A extends ListAnswer>(
  call: (offset: number) => Promise<A>,
  items: (answer: A) => T[],
  offset = 0,
): Promise<Page<T>> {
  const fetch = async (at: number): Promise<Page<T>> => {
    const answer = await call(at);
    return new Page(items(answer), answer.total, answer.hasMore, at, fetch);
  };
  return fetch(offset);
}

/** `client.sessions`: create, get, status, cancel, fulfill, list. */
export class Sessions {
  constructor(
    private readonly t: ApiTransport,
    private readonly rpc: Client<typeof PaymentService>,
  ) {}

  /** A payment session; send the player to its `url`. */
  create(params: Params<typeof CreateSessionRequestSchema>, options?: CallOptions) {
    return this.rpc.createSession(dated(params), this.t.options(options));
  }

  get(id: string, options?: CallOptions): Promise<Session> {
    return this.rpc.getSession({ id }, this.t.options(options));
  }

  /** `{ id, sessionId, status }`: the cheap poll. */
  status(id: string, options?: CallOptions) {
    return this.rpc.getSessionStatus({ id }, this.t.options(options));
  }

  /** Cancels a pending session (its payment page stops taking payment at once). */
  cancel(id: string, options?: CallOptions) {
    return this.rpc.cancelSession({ id }, this.t.options(options));
  }

  /**
   * Reports that the game granted a paid session's purchase (sets `fulfilledAt`; a second call
   * returns the same session). A session that is not paid: `session_not_paid`.
   */
  fulfill(id: string, options?: CallOptions): Promise<Session> {
    return this.rpc.fulfillSession({ id }, this.t.options(options));
  }

  /** A page of sessions, newest first; `for await` over it walks every later page too. */
  list(params: ListParams<typeof ListSessionsRequestSchema> = {}, options?: CallOptions): Promise<Page<Session>> {
    const request = dated(params);
    return page((offset) => this.rpc.listSessions({ ...request, offset }, this.t.options(options)), (a) => a.sessions, params.offset);
  }
}

/** `client.payments`: get, list (succeeded payments). */
export class Payments {
  constructor(
    private readonly t: ApiTransport,
    private readonly rpc: Client<typeof PaymentService>,
  ) {}

  get(id: string, options?: CallOptions): Promise<Payment> {
    return this.rpc.getPayment({ id }, this.t.options(options));
  }

  list(params: ListParams<typeof ListPaymentsRequestSchema> = {}, options?: CallOptions): Promise<Page<Payment>> {
    const request = dated(params);
    return page((offset) => this.rpc.listPayments({ ...request, offset }, this.t.options(options)), (a) => a.payments, params.offset);
  }
}

/** `client.refunds`: money given back for a succeeded payment, in full or in part. */
export class Refunds {
  constructor(
    private readonly t: ApiTransport,
    private readonly rpc: Client<typeof PaymentService>,
  ) {}

  /**
   * Refunds a succeeded payment (`amount`: all of what is left when unset). The refund starts
   * `pending`; the processor settles it. Refusals: `payment_not_refundable`, `invalid_refund_amount`.
   */
  create(paymentId: string, params: { amount?: number; reason?: string } = {}, options?: CallOptions): Promise<Refund> {
    return this.rpc.refundPayment({ paymentId, ...params }, this.t.options(options));
  }

  get(id: string, options?: CallOptions): Promise<Refund> {
    return this.rpc.getRefund({ id }, this.t.options(options));
  }

  list(params: ListParams<typeof ListRefundsRequestSchema> = {}, options?: CallOptions): Promise<Page<Refund>> {
    const request = dated(params);
    return page((offset) => this.rpc.listRefunds({ ...request, offset }, this.t.options(options)), (a) => a.refunds, params.offset);
  }
}

/** `client.disputes`: list. */
export class Disputes {
  constructor(
    private readonly t: ApiTransport,
    private readonly rpc: Client<typeof PaymentService>,
  ) {}

  list(params: ListParams<typeof ListDisputesRequestSchema> = {}, options?: CallOptions): Promise<Page<Dispute>> {
    const request = dated(params);
    return page((offset) => this.rpc.listDisputes({ ...request, offset }, this.t.options(options)), (a) => a.disputes, params.offset);
  }
}

/** `client.webhooks`: endpoints and the event log of the key's game and mode. */
export class Webhooks {
  constructor(
    private readonly t: ApiTransport,
    private readonly rpc: Client<typeof WebhookService>,
  ) {}

  /** A new endpoint and its secret (shown once). */
  createEndpoint(params: Params<typeof CreateEndpointRequestSchema>, options?: CallOptions) {
    return this.rpc.createEndpoint(params, this.t.options(options));
  }

  listEndpoints(options?: CallOptions) {
    return this.rpc.listEndpoints({}, this.t.options(options));
  }

  /** Only the fields given change. */
  updateEndpoint(params: Params<typeof UpdateEndpointRequestSchema>, options?: CallOptions) {
    return this.rpc.updateEndpoint(params, this.t.options(options));
  }

  deleteEndpoint(id: string, options?: CallOptions) {
    return this.rpc.deleteEndpoint({ id }, this.t.options(options));
  }

  /** A new secret; the old one keeps signing for `overlapSeconds` (default 24 h). */
  rotateSecret(id: string, params: { overlapSeconds?: number } = {}, options?: CallOptions) {
    return this.rpc.rotateSecret({ id, ...params }, this.t.options(options));
  }

  /** A page of events (newest first; with `after`, those after that event, oldest first). */
  listEvents(params: ListParams<typeof ListEventsRequestSchema> = {}, options?: CallOptions): Promise<Page<Event>> {
    const request = dated(params);
    return page((offset) => this.rpc.listEvents({ ...request, offset }, this.t.options(options)), (a) => a.events, params.offset);
  }

  /** A page of delivery attempts to the key's endpoints, newest first. */
  listDeliveryAttempts(
    params: ListParams<typeof ListDeliveryAttemptsRequestSchema> = {},
    options?: CallOptions,
  ): Promise<Page<DeliveryAttempt>> {
    const request = dated(params);
    return page((offset) => this.rpc.listDeliveryAttempts({ ...request, offset }, this.t.options(options)), (a) => a.attempts, params.offset);
  }

  /** Delivers matching events again (same ids), to one endpoint or every enabled one that wants them: `{ replayed }`. */
  replayEvents(params: Params<typeof ReplayEventsRequestSchema>, options?: CallOptions) {
    return this.rpc.replayEvents(dated(params), this.t.options(options));
  }

  /** Signs and sends a `ping` event to the endpoint now; returns the attempt. */
  sendTestEvent(endpointId: string, options?: CallOptions): Promise<DeliveryAttempt> {
    return this.rpc.sendTestEvent({ endpointId }, this.t.options(options));
  }

  /** Delivers an event again, to one endpoint or all that want it. */
  resendEvent(id: string, params: { endpointId?: string } = {}, options?: CallOptions) {
    return this.rpc.resendEvent({ id, ...params }, this.t.options(options));
  }
}

/** `client.sandbox`: test helpers for sandbox keys (live keys get `sandbox_only`). */
export class Sandbox {
  constructor(
    private readonly t: ApiTransport,
    private readonly rpc: Client<typeof SandboxService>,
  ) {}

  /** Pays a pending session; `outcome`: succeeded, insufficient_funds, card_declined, partial. */
  paySession(sessionId: string, params: { method?: string; outcome?: string } = {}, options?: CallOptions): Promise<Payment> {
    return this.rpc.paySession({ sessionId, method: "card", outcome: "succeeded", ...params }, this.t.options(options));
  }

  /** Reports a dispute against a payment, as a processor would. */
  createDispute(paymentId: string, params: { reason?: string; amount?: number } = {}, options?: CallOptions): Promise<Dispute> {
    return this.rpc.createDispute({ paymentId, reason: "fraudulent", ...params }, this.t.options(options));
  }

  /** Refunds as `refunds.create` does, with the sandbox's answer chosen: `outcome` succeeded or failed. */
  createRefund(paymentId: string, params: { amount?: number; reason?: string; outcome?: string } = {}, options?: CallOptions): Promise<Refund> {
    return this.rpc.createRefund({ paymentId, ...params }, this.t.options(options));
  }

  /** Moves a pending session past its expiry now. */
  expireSession(sessionId: string, options?: CallOptions): Promise<Session> {
    return this.rpc.expireSession({ sessionId }, this.t.options(options));
  }
}

/**
 * A client for one API key.
 *
 *     const client = new ToffeePay("sk_test_...", { baseUrl: "https://pay.example.com" });
 *     const session = await client.sessions.create({ gameId: "space_shooter", userId: "player_42",
 *       item: { title: "50 Gold Coins", price: 499, currency: "USD" } });
 *
 * Mutating calls carry one Idempotency-Key across their retries. Errors are ToffeePayError
 * subclasses with `.reason`. `client.rpc` has every RPC of every service as generated.
 */
export class ToffeePay {
  readonly sessions: Sessions;
  readonly payments: Payments;
  readonly refunds: Refunds;
  readonly disputes: Disputes;
  readonly webhooks: Webhooks;
  readonly sandbox: Sandbox;
  /** The generated Connect clients, with the same key, retries and typed errors. */
  readonly rpc: {
    payment: Client<typeof PaymentService>;
    sandbox: Client<typeof SandboxService>;
    webhook: Client<typeof WebhookService>;
    health: Client<typeof HealthService>;
  };
  private readonly transport: ApiTransport;

  constructor(apiKey: string, options: ClientOptions = {}) {
    this.transport = new ApiTransport(apiKey, options);
    this.rpc = {
      payment: this.transport.service(PaymentService),
      sandbox: this.transport.service(SandboxService),
      webhook: this.transport.service(WebhookService),
      health: this.transport.service(HealthService),
    };
    this.sessions = new Sessions(this.transport, this.rpc.payment);
    this.payments = new Payments(this.transport, this.rpc.payment);
    this.refunds = new Refunds(this.transport, this.rpc.payment);
    this.disputes = new Disputes(this.transport, this.rpc.payment);
    this.webhooks = new Webhooks(this.transport, this.rpc.webhook);
    this.sandbox = new Sandbox(this.transport, this.rpc.sandbox);
  }

  get baseUrl(): string {
    return this.transport.baseUrl;
  }
}
