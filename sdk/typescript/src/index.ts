/** ToffeePay for Node game servers. */
export { ToffeePay, Sessions, Payments, Refunds, Disputes, Webhooks, Sandbox, type Params } from "./client.js";
export { type ClientOptions, type CallOptions, DEFAULT_BASE_URL } from "./transport.js";
export { Page } from "./pagination.js";
export {
  ToffeePayError,
  APIConnectionError,
  APIError,
  AuthenticationError,
  ConflictError,
  FailedPreconditionError,
  InvalidRequestError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  SignatureVerificationError,
} from "./errors.js";
export {
  Webhook,
  WebhookSignature,
  LegacyCallback,
  LEGACY_FIELDS,
  DEFAULT_TOLERANCE,
  SIGNATURE_HEADER,
  type WebhookEvent,
  type LegacyFields,
  type Secret,
  type SignatureHeaderValue,
  type VerifyOptions,
} from "./webhook.js";
export { ReturnToken, type ReturnClaims, type ReturnTokenOptions, type Jwks, type Jwk } from "./returnToken.js";
export { VERSION } from "./version.js";
export * from "./gen/pay/v1/resources_pb.js";
export * from "./gen/pay/v1/payment_pb.js";
export * from "./gen/pay/v1/sandbox_pb.js";
export * from "./gen/pay/v1/webhook_pb.js";
export * from "./gen/pay/v1/health_pb.js";
export { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
