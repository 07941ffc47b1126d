// Package toffeepay is the Go SDK of ToffeePay: a client for every RPC of the API (Connect's
// JSON protocol over net/http, standard library only), and verifiers for what ToffeePay
// sends a game server: signed webhooks, legacy form callbacks and return tokens.
//
//	client := toffeepay.NewClient("sk_test_...", toffeepay.WithBaseURL("https://pay.example.com"))
//	session, err := client.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{
//		GameID: "space_shooter", UserID: "player_42",
//		Item:   toffeepay.Item{Title: "50 Gold Coins", Price: 499, Currency: "USD"},
//	})
package toffeepay

import (
	"context"
	"net/http"
	"time"
)

// Client is a client for one API key. Its namespaces (Sessions, Payments, ...) cover the
// usual calls; the embedded Services (client.PaymentService, client.WebhookService, ...)
// have every RPC as generated from the proto files. Mutating calls carry one
// Idempotency-Key across their retries; every error is a *Error.
type Client struct {
	Services
	Sessions *Sessions
	Payments *Payments
	Refunds  *Refunds
	Disputes *Disputes
	Webhooks *Webhooks
	Sandbox  *Sandbox
	t        *transport
}

// NewClient makes a client for apiKey (sk_test_... or sk_live_...).
func NewClient(apiKey string, opts ...Option) *Client {
	t := &transport{
		apiKey:        apiKey,
		baseURL:       DefaultBaseURL,
		http:          http.DefaultClient,
		timeout:       30 * time.Second,
		maxRetries:    2,
		retryDelay:    500 * time.Millisecond,
		maxRetryAfter: 10 * time.Second,
	}
	for _, o := range opts {
		o(t)
	}
	s := newServices(t)
	return &Client{
		Services: s,
		Sessions: &Sessions{rpc: s.PaymentService},
		Payments: &Payments{rpc: s.PaymentService},
		Refunds:  &Refunds{rpc: s.PaymentService},
		Disputes: &Disputes{rpc: s.PaymentService},
		Webhooks: &Webhooks{rpc: s.WebhookService},
		Sandbox:  &Sandbox{rpc: s.SandboxService},
		t:        t,
	}
}

// BaseURL is where this client sends its calls.
func (c *Client) BaseURL() string { return c.t.baseURL }

// Sessions: create one per purchase, send the player to its URL, then ask or wait for the webhook.
type Sessions struct{ rpc *PaymentServiceClient }

// Create makes a payment session.
func (s *Sessions) Create(ctx context.Context, req *CreateSessionRequest, opts ...CallOption) (*CreateSessionResponse, error) {
	return s.rpc.CreateSession(ctx, req, opts...)
}

// Get returns the session.
func (s *Sessions) Get(ctx context.Context, id string, opts ...CallOption) (*Session, error) {
	return s.rpc.GetSession(ctx, &GetSessionRequest{ID: id}, opts...)
}

// Status returns the session's status only: the cheap poll.
func (s *Sessions) Status(ctx context.Context, id string, opts ...CallOption) (*GetSessionStatusResponse, error) {
	return s.rpc.GetSessionStatus(ctx, &GetSessionStatusRequest{ID: id}, opts...)
}

// Cancel cancels a pending session; its payment page stops taking payment at once.
func (s *Sessions) Cancel(ctx context.Context, id string, opts ...CallOption) error {
	_, err := s.rpc.CancelSession(ctx, &CancelSessionRequest{ID: id}, opts...)
	return err
}

// Fulfill reports that the game granted a paid session's purchase (sets FulfilledAt; a second
// call returns the same session). A session that is not paid: reason "session_not_paid".
func (s *Sessions) Fulfill(ctx context.Context, id string, opts ...CallOption) (*Session, error) {
	return s.rpc.FulfillSession(ctx, &FulfillSessionRequest{ID: id}, opts...)
}

// List returns a page of sessions, newest first, starting at req.Offset; page.Iter() walks on.
func (s *Sessions) List(ctx context.Context, req *ListSessionsRequest, opts ...CallOption) (*Page[Session], error) {
	r := copyOf(req)
	return listPage(ctx, r.Offset, func(ctx context.Context, at int32) (*ListSessionsResponse, error) {
		r.Offset = at
		return s.rpc.ListSessions(ctx, &r, opts...)
	}, func(a *ListSessionsResponse) ([]Session, int32, bool) { return a.Sessions, a.Total, a.HasMore })
}

// Payments: the attempt to pay a session, and the succeeded ones.
type Payments struct{ rpc *PaymentServiceClient }

// Get returns one payment, whatever its status.
func (p *Payments) Get(ctx context.Context, id string, opts ...CallOption) (*Payment, error) {
	return p.rpc.GetPayment(ctx, &GetPaymentRequest{ID: id}, opts...)
}

// List returns a page of succeeded payments, newest first.
func (p *Payments) List(ctx context.Context, req *ListPaymentsRequest, opts ...CallOption) (*Page[Payment], error) {
	r := copyOf(req)
	return listPage(ctx, r.Offset, func(ctx context.Context, at int32) (*ListPaymentsResponse, error) {
		r.Offset = at
		return p.rpc.ListPayments(ctx, &r, opts...)
	}, func(a *ListPaymentsResponse) ([]Payment, int32, bool) { return a.Payments, a.Total, a.HasMore })
}

// Refunds: money given back for a succeeded payment, in full or in part.
type Refunds struct{ rpc *PaymentServiceClient }

// Create refunds a succeeded payment (Amount: all of what is left when nil). The refund starts
// pending; the processor settles it (refund.succeeded or refund.failed). Refusals:
// "payment_not_refundable", "invalid_refund_amount".
func (r *Refunds) Create(ctx context.Context, req *RefundPaymentRequest, opts ...CallOption) (*Refund, error) {
	return r.rpc.RefundPayment(ctx, req, opts...)
}

// Get returns one refund.
func (r *Refunds) Get(ctx context.Context, id string, opts ...CallOption) (*Refund, error) {
	return r.rpc.GetRefund(ctx, &GetRefundRequest{ID: id}, opts...)
}

// List returns a page of refunds, newest first.
func (r *Refunds) List(ctx context.Context, req *ListRefundsRequest, opts ...CallOption) (*Page[Refund], error) {
	q := copyOf(req)
	return listPage(ctx, q.Offset, func(ctx context.Context, at int32) (*ListRefundsResponse, error) {
		q.Offset = at
		return r.rpc.ListRefunds(ctx, &q, opts...)
	}, func(a *ListRefundsResponse) ([]Refund, int32, bool) { return a.Refunds, a.Total, a.HasMore })
}

// Disputes reported by the processor.
type Disputes struct{ rpc *PaymentServiceClient }

// List returns a page of disputes, newest first.
func (d *Disputes) List(ctx context.Context, req *ListDisputesRequest, opts ...CallOption) (*Page[Dispute], error) {
	r := copyOf(req)
	return listPage(ctx, r.Offset, func(ctx context.Context, at int32) (*ListDisputesResponse, error) {
		r.Offset = at
		return d.rpc.ListDisputes(ctx, &r, opts...)
	}, func(a *ListDisputesResponse) ([]Dispute, int32, bool) { return a.Disputes, a.Total, a.HasMore })
}

// Webhooks: the endpoints and event log of the key's game and mode.
type Webhooks struct{ rpc *WebhookServiceClient }

// CreateEndpoint registers an endpoint; the answer has its secret (shown once).
func (w *Webhooks) CreateEndpoint(ctx context.Context, req *CreateEndpointRequest, opts ...CallOption) (*CreateEndpointResponse, error) {
	return w.rpc.CreateEndpoint(ctx, req, opts...)
}

// ListEndpoints returns every endpoint.
func (w *Webhooks) ListEndpoints(ctx context.Context, opts ...CallOption) (*ListEndpointsResponse, error) {
	return w.rpc.ListEndpoints(ctx, &ListEndpointsRequest{}, opts...)
}

// UpdateEndpoint changes the fields that are set.
func (w *Webhooks) UpdateEndpoint(ctx context.Context, req *UpdateEndpointRequest, opts ...CallOption) (*Endpoint, error) {
	return w.rpc.UpdateEndpoint(ctx, req, opts...)
}

// DeleteEndpoint removes an endpoint.
func (w *Webhooks) DeleteEndpoint(ctx context.Context, id string, opts ...CallOption) error {
	_, err := w.rpc.DeleteEndpoint(ctx, &DeleteEndpointRequest{ID: id}, opts...)
	return err
}

// RotateSecret issues a new secret; the old one keeps signing until the overlap ends.
func (w *Webhooks) RotateSecret(ctx context.Context, req *RotateSecretRequest, opts ...CallOption) (*RotateSecretResponse, error) {
	return w.rpc.RotateSecret(ctx, req, opts...)
}

// ListEvents returns a page of events (with After: those after that event, oldest first).
func (w *Webhooks) ListEvents(ctx context.Context, req *ListEventsRequest, opts ...CallOption) (*Page[Event], error) {
	r := copyOf(req)
	return listPage(ctx, r.Offset, func(ctx context.Context, at int32) (*ListEventsResponse, error) {
		r.Offset = at
		return w.rpc.ListEvents(ctx, &r, opts...)
	}, func(a *ListEventsResponse) ([]Event, int32, bool) { return a.Events, a.Total, a.HasMore })
}

// ListDeliveryAttempts returns a page of delivery attempts to the key's endpoints, newest first.
func (w *Webhooks) ListDeliveryAttempts(ctx context.Context, req *ListDeliveryAttemptsRequest, opts ...CallOption) (*Page[DeliveryAttempt], error) {
	r := copyOf(req)
	return listPage(ctx, r.Offset, func(ctx context.Context, at int32) (*ListDeliveryAttemptsResponse, error) {
		r.Offset = at
		return w.rpc.ListDeliveryAttempts(ctx, &r, opts...)
	}, func(a *ListDeliveryAttemptsResponse) ([]DeliveryAttempt, int32, bool) {
		return a.Attempts, a.Total, a.HasMore
	})
}

// ReplayEvents delivers matching events again (same ids), to one endpoint or to every enabled
// endpoint that wants them.
func (w *Webhooks) ReplayEvents(ctx context.Context, req *ReplayEventsRequest, opts ...CallOption) (*ReplayEventsResponse, error) {
	return w.rpc.ReplayEvents(ctx, req, opts...)
}

// SendTestEvent signs and sends a ping event to the endpoint now, and returns the attempt.
func (w *Webhooks) SendTestEvent(ctx context.Context, endpointID string, opts ...CallOption) (*DeliveryAttempt, error) {
	return w.rpc.SendTestEvent(ctx, &SendTestEventRequest{EndpointID: endpointID}, opts...)
}

// ResendEvent delivers an event again, to one endpoint or to all that want it.
func (w *Webhooks) ResendEvent(ctx context.Context, req *ResendEventRequest, opts ...CallOption) (*ResendEventResponse, error) {
	return w.rpc.ResendEvent(ctx, req, opts...)
}

// Sandbox: test helpers for sandbox keys (live keys get reason "sandbox_only").
type Sandbox struct{ rpc *SandboxServiceClient }

// PaySession pays a pending session through the sandbox processor (Method defaults to card,
// Outcome to succeeded; or insufficient_funds, card_declined, partial).
func (s *Sandbox) PaySession(ctx context.Context, req *PaySessionRequest, opts ...CallOption) (*Payment, error) {
	return s.rpc.PaySession(ctx, req, opts...)
}

// CreateDispute reports a dispute against a payment, as a processor would.
func (s *Sandbox) CreateDispute(ctx context.Context, req *CreateDisputeRequest, opts ...CallOption) (*Dispute, error) {
	return s.rpc.CreateDispute(ctx, req, opts...)
}

// CreateRefund refunds a payment as Refunds.Create does, with the sandbox processor's answer
// chosen (Outcome: succeeded or failed); it settles a moment later, like every refund.
func (s *Sandbox) CreateRefund(ctx context.Context, req *CreateRefundRequest, opts ...CallOption) (*Refund, error) {
	return s.rpc.CreateRefund(ctx, req, opts...)
}

// ExpireSession moves a pending session past its expiry now.
func (s *Sandbox) ExpireSession(ctx context.Context, sessionID string, opts ...CallOption) (*Session, error) {
	return s.rpc.ExpireSession(ctx, &ExpireSessionRequest{SessionID: sessionID}, opts...)
}

// copyOf copies a request (nil as the zero request), so paging never changes the caller's.
func copyOf[T any](req *T) T {
	var r T
	if req != nil {
		r = *req
	}
	return r
}

// String returns a pointer to s, for optional fields.
func String(s string) *string { return &s }

// Int32 returns a pointer to n, for optional fields.
func Int32(n int32) *int32 { return &n }

// Bool returns a pointer to b, for optional fields.
func Bool(b bool) *bool { return &b }
