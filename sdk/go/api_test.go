package toffeepay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	toffeepay "toffeepay.dev/sdk/go"
)

// The client against a real `toffeepay serve`, given by the test run in TOFFEEPAY_TEST_* variables.

var item = toffeepay.Item{Title: "50 Gold Coins", Price: 499, Currency: "USD"}

func server(t *testing.T) (baseURL, gameID string) {
	t.Helper()
	baseURL = os.Getenv("TOFFEEPAY_TEST_BASE_URL")
	if baseURL == "" {
		t.Skip("TOFFEEPAY_TEST_BASE_URL is not set (run through tests/e2e/test_sdk_languages.py)")
	}
	return baseURL, os.Getenv("TOFFEEPAY_TEST_GAME_ID")
}

func client(t *testing.T, opts ...toffeepay.Option) (*toffeepay.Client, string) {
	baseURL, gameID := server(t)
	all := append([]toffeepay.Option{toffeepay.WithBaseURL(baseURL), toffeepay.WithRetryDelay(20 * time.Millisecond)}, opts...)
	return toffeepay.NewClient(os.Getenv("TOFFEEPAY_TEST_SANDBOX_KEY"), all...), gameID
}

var players = 0

func player() string {
	players++
	return fmt.Sprintf("go_player_%d_%d", time.Now().UnixNano(), players)
}

func apiError(t *testing.T, err error, reason, code string) *toffeepay.Error {
	t.Helper()
	var e *toffeepay.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *toffeepay.Error %s, got %v", reason, err)
	}
	if e.Reason != reason || e.Code != code || strings.HasPrefix(e.Message, reason+":") || e.Message == "" {
		t.Fatalf("want %s/%s, got %+v", reason, code, e)
	}
	return e
}

func TestCreateGetStatusCancel(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	userID := player()
	created, err := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{
		GameID: game, UserID: userID, Item: item, ReturnURL: "mygame://done", Metadata: map[string]string{"order": "A-17"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^sess_[0-9a-z]{26}$`).MatchString(created.ID) || created.SessionID != created.ID || created.URL != tp.BaseURL()+"/"+created.ID {
		t.Fatalf("created %+v", created)
	}
	session, err := tp.Sessions.Get(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if session.Status != "pending" || session.UserID != userID || session.Item.Title != item.Title || session.Item.Price != 499 ||
		session.Metadata["order"] != "A-17" || session.ReturnURL != "mygame://done" || session.CreatedAt == nil || session.ExpiresAt.Before(time.Now()) {
		t.Fatalf("session %+v", session)
	}
	if status, err := tp.Sessions.Status(ctx, created.ID); err != nil || status.Status != "pending" {
		t.Fatalf("status %+v %v", status, err)
	}
	if err := tp.Sessions.Cancel(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if status, _ := tp.Sessions.Status(ctx, created.ID); status.Status != "cancelled" {
		t.Fatalf("status after cancel %+v", status)
	}
	apiError(t, tp.Sessions.Cancel(ctx, created.ID), "session_not_pending", toffeepay.CodeFailedPrecondition)
	// The generated clients: every RPC, the same key, retries and typed errors.
	if got, err := tp.PaymentService.GetSession(ctx, &toffeepay.GetSessionRequest{SessionID: created.ID}); err != nil || got.Status != "cancelled" {
		t.Fatalf("generated GetSession %+v %v", got, err)
	}
	if health, err := tp.HealthService.Check(ctx, &toffeepay.CheckRequest{}); err != nil || health.Status != "serving" {
		t.Fatalf("health %+v %v", health, err)
	}
	_, err = tp.PaymentService.GetPayment(ctx, &toffeepay.GetPaymentRequest{ID: "pay_01jwbq1rz3m0c6t9y2d8h5n1kq"})
	apiError(t, err, "not_found", toffeepay.CodeNotFound)
}

func TestListWithPaging(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	userID := player()
	var ids []string
	for i := 0; i < 5; i++ {
		s, err := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: userID, Item: item})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{s.ID}, ids...) // newest first
	}
	page, err := tp.Sessions.List(ctx, &toffeepay.ListSessionsRequest{UserID: userID, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Total != 5 || !page.HasMore || page.Data[0].ID != ids[0] {
		t.Fatalf("first page %+v", page)
	}
	var seen []string
	it := page.Iter()
	for it.Next(ctx) {
		seen = append(seen, it.Value().ID)
	}
	if it.Err() != nil || strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("walked %v (%v), want %v", seen, it.Err(), ids)
	}
	second, _ := page.NextPage(ctx)
	third, _ := second.NextPage(ctx)
	if last, err := third.NextPage(ctx); third.HasMore || last != nil || err != nil {
		t.Fatalf("after the last page: %+v %v", last, err)
	}
	tail, err := tp.Sessions.List(ctx, &toffeepay.ListSessionsRequest{UserID: userID, Status: "pending", Offset: 4})
	if err != nil || len(tail.Data) != 1 || tail.Data[0].ID != ids[4] {
		t.Fatalf("offset 4: %+v %v", tail, err)
	}
}

func TestSandboxPaymentsAndDisputes(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	userID := player()
	session, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: userID, Item: item})
	payment, err := tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: session.ID, Method: "google_pay", Outcome: "succeeded"})
	if err != nil || payment.Status != "succeeded" || payment.Amount != 499 || payment.Method != "google_pay" {
		t.Fatalf("payment %+v %v", payment, err)
	}
	if status, _ := tp.Sessions.Status(ctx, session.ID); status.Status != "paid" {
		t.Fatalf("status %+v", status)
	}
	if unfulfilled, err := tp.Sessions.List(ctx, &toffeepay.ListSessionsRequest{UserID: userID, Fulfilled: toffeepay.Bool(false)}); err != nil || len(unfulfilled.Data) != 1 {
		t.Fatalf("unfulfilled %+v %v", unfulfilled, err)
	}
	fulfilled, err := tp.Sessions.Fulfill(ctx, session.ID)
	if err != nil || fulfilled.FulfilledAt == nil {
		t.Fatalf("fulfill %+v %v", fulfilled, err)
	}
	if again, err := tp.Sessions.Fulfill(ctx, session.ID); err != nil || !again.FulfilledAt.Equal(*fulfilled.FulfilledAt) {
		t.Fatalf("fulfill again %+v %v", again, err)
	}
	if done, err := tp.Sessions.List(ctx, &toffeepay.ListSessionsRequest{UserID: userID, Fulfilled: toffeepay.Bool(true)}); err != nil || len(done.Data) != 1 || done.Data[0].ID != session.ID {
		t.Fatalf("fulfilled list %+v %v", done, err)
	}
	if got, err := tp.Payments.Get(ctx, payment.ID); err != nil || got.SessionID != session.ID {
		t.Fatalf("get payment %+v %v", got, err)
	}
	if list, err := tp.Payments.List(ctx, &toffeepay.ListPaymentsRequest{UserID: userID}); err != nil || len(list.Data) != 1 || list.Data[0].ID != payment.ID {
		t.Fatalf("payments %+v %v", list, err)
	}
	declined, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: userID, Item: item})
	failed, err := tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: declined.ID, Outcome: "insufficient_funds"})
	if err != nil || failed.Status != "failed" || failed.FailureCode != "insufficient_funds" {
		t.Fatalf("declined %+v %v", failed, err)
	}
	dispute, err := tp.Sandbox.CreateDispute(ctx, &toffeepay.CreateDisputeRequest{PaymentID: payment.ID, Reason: "fraudulent", Amount: toffeepay.Int32(200)})
	if err != nil || dispute.PaymentID != payment.ID || dispute.Amount != 200 {
		t.Fatalf("dispute %+v %v", dispute, err)
	}
	if list, err := tp.Disputes.List(ctx, &toffeepay.ListDisputesRequest{PaymentID: payment.ID}); err != nil || len(list.Data) != 1 || list.Data[0].ID != dispute.ID {
		t.Fatalf("disputes %+v %v", list, err)
	}
	expiring, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: userID, Item: item})
	if expired, err := tp.Sandbox.ExpireSession(ctx, expiring.ID); err != nil || expired.Status != "expired" {
		t.Fatalf("expired %+v %v", expired, err)
	}
}

func TestWebhookReceivedAndVerified(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	var secret string
	var mu sync.Mutex
	events := make(chan *toffeepay.Event, 16)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		s := secret
		mu.Unlock()
		event, err := toffeepay.ConstructEvent(body, r.Header.Get(toffeepay.SignatureHeader), s)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		events <- event
	})}
	go receiver.Serve(listener)
	defer receiver.Close()

	created, err := tp.Webhooks.CreateEndpoint(ctx, &toffeepay.CreateEndpointRequest{
		URL: "http://" + listener.Addr().String() + "/hooks", Events: []string{"payment.succeeded"}, Description: "go test",
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = created.Secret
	mu.Unlock()
	session, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: player(), Item: item})
	payment, err := tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: session.ID})
	if err != nil {
		t.Fatal(err)
	}
	var event *toffeepay.Event
	deadline := time.After(30 * time.Second)
	for event == nil || event.Data["session_id"] != session.ID {
		select {
		case event = <-events:
		case <-deadline:
			t.Fatal("no verified webhook for the session arrived in 30 s")
		}
	}
	if event.Event != "payment.succeeded" || event.Data["payment_id"] != payment.ID || event.Data["session_id"] != session.ID || event.Mode != "sandbox" {
		t.Fatalf("event %+v", event)
	}
	list, err := tp.Webhooks.ListEvents(ctx, &toffeepay.ListEventsRequest{Types: []string{"payment.succeeded"}, Limit: 250})
	found := false
	for _, e := range list.Data {
		found = found || e.ID == event.ID
	}
	if err != nil || !found {
		t.Fatalf("ListEvents misses %s: %v", event.ID, err)
	}
	if resent, err := tp.Webhooks.ResendEvent(ctx, &toffeepay.ResendEventRequest{ID: event.ID, EndpointID: created.Endpoint.ID}); err != nil || resent.Deliveries != 1 {
		t.Fatalf("resend %+v %v", resent, err)
	}
	endpoints, err := tp.Webhooks.ListEndpoints(ctx)
	if err != nil || endpoints.Total < 1 {
		t.Fatalf("endpoints %+v %v", endpoints, err)
	}
	rotated, err := tp.Webhooks.RotateSecret(ctx, &toffeepay.RotateSecretRequest{ID: created.Endpoint.ID, OverlapSeconds: toffeepay.Int32(60)})
	if err != nil || rotated.Secret == created.Secret || rotated.PreviousSecretExpiresAt == nil {
		t.Fatalf("rotate %+v %v", rotated, err)
	}
	updated, err := tp.Webhooks.UpdateEndpoint(ctx, &toffeepay.UpdateEndpointRequest{ID: created.Endpoint.ID, Enabled: toffeepay.Bool(false)})
	if err != nil || updated.Enabled {
		t.Fatalf("update %+v %v", updated, err)
	}
	if err := tp.Webhooks.DeleteEndpoint(ctx, created.Endpoint.ID); err != nil {
		t.Fatal(err)
	}
}

// proxy records requests to the server; failFirst "before" answers the first one 503 without
// forwarding it, "after" forwards it, drops the answer and answers 503.
type proxy struct {
	mu       sync.Mutex
	requests []recorded
	url      string
}

type recorded struct {
	key  string
	body string
}

func newProxy(t *testing.T, target, failFirst string) *proxy {
	p := &proxy{}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + listener.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.requests = append(p.requests, recorded{r.Header.Get("Idempotency-Key"), string(body)})
		first := len(p.requests) == 1
		p.mu.Unlock()
		if first && failFirst == "before" {
			http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
			return
		}
		forward, _ := http.NewRequest(r.Method, target+r.URL.Path, bytes.NewReader(body))
		forward.Header = r.Header.Clone()
		answer, err := http.DefaultClient.Do(forward)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer answer.Body.Close()
		data, _ := io.ReadAll(answer.Body)
		if first && failFirst == "after" {
			http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
			return
		}
		for k, v := range answer.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(answer.StatusCode)
		w.Write(data)
	})}
	go srv.Serve(listener)
	t.Cleanup(func() { srv.Close() })
	return p
}

func TestRetriesKeepOneIdempotencyKey(t *testing.T) {
	for _, failFirst := range []string{"before", "after"} {
		t.Run(failFirst, func(t *testing.T) {
			baseURL, game := server(t)
			p := newProxy(t, baseURL, failFirst)
			tp, _ := client(t, toffeepay.WithBaseURL(p.url))
			userID := player()
			created, err := tp.Sessions.Create(context.Background(), &toffeepay.CreateSessionRequest{GameID: game, UserID: userID, Item: item})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.requests) != 2 || p.requests[0].key == "" || p.requests[0].key != p.requests[1].key || p.requests[0].body != p.requests[1].body {
				t.Fatalf("attempts %+v", p.requests)
			}
			direct, _ := client(t)
			list, err := direct.Sessions.List(context.Background(), &toffeepay.ListSessionsRequest{UserID: userID})
			if err != nil || list.Total != 1 || list.Data[0].ID != created.ID {
				t.Fatalf("the retry created more: %+v %v", list, err)
			}
		})
	}
}

func TestCallerIdempotencyKey(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	key := toffeepay.WithIdempotencyKey(fmt.Sprintf("order-%d", time.Now().UnixNano()))
	req := &toffeepay.CreateSessionRequest{GameID: game, UserID: player(), Item: item}
	one, err1 := tp.Sessions.Create(ctx, req, key)
	two, err2 := tp.Sessions.Create(ctx, req, key)
	if err1 != nil || err2 != nil || one.ID != two.ID {
		t.Fatalf("replay: %+v %+v %v %v", one, two, err1, err2)
	}
	other := *req
	other.Item.Price = 500
	_, err := tp.Sessions.Create(ctx, &other, key)
	apiError(t, err, "idempotency_key_reused", toffeepay.CodeInvalidArgument)
}

func TestNoRetryOf4xxAndReadsCarryNoKey(t *testing.T) {
	baseURL, game := server(t)
	p := newProxy(t, baseURL, "")
	tp, _ := client(t, toffeepay.WithBaseURL(p.url))
	ctx := context.Background()
	bad := item
	bad.Currency = "XXQ"
	_, err := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: player(), Item: bad})
	apiError(t, err, "invalid_currency", toffeepay.CodeInvalidArgument)
	if len(p.requests) != 1 {
		t.Fatalf("a 4xx was retried: %d attempts", len(p.requests))
	}
	_, err = tp.Sessions.Get(ctx, "sess_01jwbq1m9ef8j3vq0x5w2k7r4t")
	e := apiError(t, err, "not_found", toffeepay.CodeNotFound)
	if len(p.requests) != 2 || p.requests[1].key != "" || e.HTTPStatus != 404 || e.RequestID == "" {
		t.Fatalf("read: %+v %+v", p.requests, e)
	}
}

func TestTypedErrorsForEachReasonClass(t *testing.T) {
	baseURL, game := server(t)
	tp, _ := client(t)
	ctx := context.Background()
	_, err := toffeepay.NewClient("sk_test_nope", toffeepay.WithBaseURL(baseURL)).Sessions.Status(ctx, "sess_x")
	apiError(t, err, "unauthenticated", toffeepay.CodeUnauthenticated)
	_, err = tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: "someone_else", UserID: "p", Item: item})
	apiError(t, err, "invalid_game_id", toffeepay.CodePermissionDenied)
	free := item
	free.Price = 0
	_, err = tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: "p", Item: free})
	apiError(t, err, "invalid_price", toffeepay.CodeInvalidArgument)
	_, err = tp.Sessions.List(ctx, &toffeepay.ListSessionsRequest{Limit: 251})
	apiError(t, err, "invalid_limit", toffeepay.CodeInvalidArgument)
	_, err = tp.Payments.Get(ctx, "pay_01jwbq1rz3m0c6t9y2d8h5n1kq")
	apiError(t, err, "not_found", toffeepay.CodeNotFound)
	_, err = toffeepay.NewClient(os.Getenv("TOFFEEPAY_TEST_LIVE_KEY"), toffeepay.WithBaseURL(baseURL)).Sandbox.ExpireSession(ctx, "sess_x")
	apiError(t, err, "sandbox_only", toffeepay.CodePermissionDenied)
	session, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: player(), Item: item})
	tp.Sandbox.ExpireSession(ctx, session.ID)
	_, err = tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: session.ID})
	apiError(t, err, "session_expired", toffeepay.CodeFailedPrecondition)
	_, err = tp.Sessions.Fulfill(ctx, session.ID)
	apiError(t, err, "session_not_paid", toffeepay.CodeFailedPrecondition)
}

func TestConnectionRefusedIsRetriedThenAnError(t *testing.T) {
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "http://" + listener.Addr().String()
	listener.Close()
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithMaxRetries(1), toffeepay.WithRetryDelay(time.Millisecond))
	_, err := tp.Sessions.Status(context.Background(), "sess_x")
	var e *toffeepay.Error
	if !errors.As(err, &e) || !e.IsConnection() || e.Reason != "" || e.Code != toffeepay.CodeUnavailable {
		t.Fatalf("%#v", err)
	}
}

func TestReasonFromErrorInfoAnd5xxRetried(t *testing.T) {
	// google.rpc.ErrorInfo{reason: "session_expired", domain: "toffeepay.dev"} as protobuf bytes.
	info := append(append([]byte{0x0a, 15}, "session_expired"...), append([]byte{0x12, 13}, "toffeepay.dev"...)...)
	var keys []string
	var mu sync.Mutex
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		n := len(keys)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.WriteHeader(500)
			w.Write([]byte(`{"code":"internal","message":"boom"}`))
			return
		}
		w.Header().Set("X-Request-Id", "req_1")
		w.WriteHeader(400)
		json.NewEncoder(w).Encode(map[string]any{
			"code": "failed_precondition", "message": "the session expired",
			"details": []map[string]string{{"type": "google.rpc.ErrorInfo", "value": base64.RawStdEncoding.EncodeToString(info)}},
		})
	})}
	go srv.Serve(listener)
	defer srv.Close()
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL("http://"+listener.Addr().String()), toffeepay.WithRetryDelay(time.Millisecond))
	_, err := tp.Sandbox.PaySession(context.Background(), &toffeepay.PaySessionRequest{SessionID: "sess_x"})
	e := apiError(t, err, "session_expired", toffeepay.CodeFailedPrecondition)
	if e.Message != "the session expired" || e.RequestID != "req_1" || e.HTTPStatus != 400 {
		t.Fatalf("%+v", e)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("attempts' keys %v", keys)
	}
}

// A request as a scripted server saw it.
type hit struct {
	at  time.Time
	key string
}

// An answer of a scripted server: status, JSON body, extra headers.
type answer struct {
	status  int
	body    any
	headers map[string]string
}

// scripted is a local HTTP server whose n-th answer (0 first) is answer(n); hits returns the
// requests it has had.
func scripted(t *testing.T, answerFor func(n int) answer) (url string, hits func() []hit) {
	t.Helper()
	var mu sync.Mutex
	var seen []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, hit{at: time.Now(), key: r.Header.Get("Idempotency-Key")})
		n := len(seen) - 1
		mu.Unlock()
		a := answerFor(n)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", fmt.Sprintf("req_%d", n+1))
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		json.NewEncoder(w).Encode(a.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []hit {
		mu.Lock()
		defer mu.Unlock()
		return append([]hit(nil), seen...)
	}
}

// rateLimited is the 429 the server answers (src/toffeepay_server/api/errors.py): Connect's JSON
// error with a google.rpc.ErrorInfo{reason: "rate_limited", domain: "toffeepay.dev",
// metadata: {request_id}} detail, and a Retry-After header unless retryAfter is "".
func rateLimited(retryAfter string) answer {
	info := append(append([]byte{0x0a, 12}, "rate_limited"...), append([]byte{0x12, 13}, "toffeepay.dev"...)...)
	info = append(append(append(info, 0x1a, 19, 0x0a, 10), "request_id"...), append([]byte{0x12, 5}, "req_1"...)...)
	a := answer{status: 429, body: map[string]any{
		"code":    "resource_exhausted",
		"message": "rate_limited: too many requests for this API key, retry in " + retryAfter + " s",
		"details": []map[string]any{{
			"type":  "google.rpc.ErrorInfo",
			"value": base64.RawStdEncoding.EncodeToString(info),
			"debug": map[string]any{"reason": "rate_limited", "domain": "toffeepay.dev", "metadata": map[string]string{"request_id": "req_1"}},
		}},
	}}
	if retryAfter != "" {
		a.headers = map[string]string{"Retry-After": retryAfter}
	}
	return a
}

var sessionAnswer = answer{status: 200, body: map[string]any{"id": "sess_x", "status": "pending", "user_id": "p", "game_id": "g"}}

func TestRateLimitedIsRetriedAfterRetryAfterWithOneKey(t *testing.T) {
	url, hits := scripted(t, func(n int) answer {
		if n == 0 {
			return rateLimited("1")
		}
		return sessionAnswer
	})
	// A first backoff of 1 ms: the wait that follows is the server's.
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(time.Millisecond))
	session, err := tp.Sandbox.ExpireSession(context.Background(), "sess_x")
	if err != nil || session.ID != "sess_x" {
		t.Fatalf("%+v, %v", session, err)
	}
	h := hits()
	if len(h) != 2 || h[0].key == "" || h[0].key != h[1].key {
		t.Fatalf("attempts %+v", h)
	}
	if waited := h[1].at.Sub(h[0].at); waited < 990*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("waited %v for a Retry-After of 1 s", waited)
	}
}

func TestRateLimitedWithoutRetryAfterBacksOffAndReadsAreRetried(t *testing.T) {
	url, hits := scripted(t, func(n int) answer {
		if n < 2 {
			return rateLimited("")
		}
		return answer{status: 200, body: map[string]string{"id": "sess_x", "session_id": "sess_x", "status": "paid"}}
	})
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(100*time.Millisecond))
	status, err := tp.Sessions.Status(context.Background(), "sess_x")
	if err != nil || status.Status != "paid" {
		t.Fatalf("%+v, %v", status, err)
	}
	h := hits()
	if len(h) != 3 || h[0].key != "" {
		t.Fatalf("attempts %+v", h)
	}
	// 100 ms then 200 ms, each between half and all of it.
	if w0, w1 := h[1].at.Sub(h[0].at), h[2].at.Sub(h[1].at); w0 < 45*time.Millisecond || w0 > 600*time.Millisecond || w1 < 95*time.Millisecond || w1 > 700*time.Millisecond {
		t.Fatalf("waits %v, %v", w0, w1)
	}
}

func TestRateLimitedGivesUpAfterMaxRetries(t *testing.T) {
	url, hits := scripted(t, func(int) answer { return rateLimited("0.1") })
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithMaxRetries(2), toffeepay.WithRetryDelay(time.Millisecond))
	_, err := tp.Sessions.Create(context.Background(), &toffeepay.CreateSessionRequest{GameID: "g", UserID: "p", Item: item})
	e := apiError(t, err, "rate_limited", toffeepay.CodeResourceExhausted)
	if e.HTTPStatus != 429 || e.RequestID != "req_3" || !e.Temporary() || e.Message != "too many requests for this API key, retry in 0.1 s" {
		t.Fatalf("%+v", e)
	}
	h := hits()
	if len(h) != 3 || h[0].key == "" || h[0].key != h[1].key || h[1].key != h[2].key {
		t.Fatalf("attempts %+v", h)
	}
	for i := 1; i < 3; i++ {
		if w := h[i].at.Sub(h[i-1].at); w < 95*time.Millisecond {
			t.Fatalf("waited %v for a Retry-After of 0.1 s", w)
		}
	}
	// WithMaxRetries(0) turns retries off.
	url, hits = scripted(t, func(int) answer { return rateLimited("0.1") })
	tp = toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithMaxRetries(0))
	_, err = tp.Sessions.Status(context.Background(), "sess_x")
	apiError(t, err, "rate_limited", toffeepay.CodeResourceExhausted)
	if len(hits()) != 1 {
		t.Fatalf("%d attempts with WithMaxRetries(0)", len(hits()))
	}
}

func TestRetryAfterOverTheMaximumIsReturnedAtOnce(t *testing.T) {
	for _, c := range []struct {
		retryAfter string
		opts       []toffeepay.Option
	}{{"11", nil}, {"1", []toffeepay.Option{toffeepay.WithMaxRetryAfter(500 * time.Millisecond)}}} {
		url, hits := scripted(t, func(int) answer { return rateLimited(c.retryAfter) })
		tp := toffeepay.NewClient("sk_test_x", append([]toffeepay.Option{toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(time.Millisecond)}, c.opts...)...)
		started := time.Now()
		_, err := tp.Sessions.Status(context.Background(), "sess_x")
		apiError(t, err, "rate_limited", toffeepay.CodeResourceExhausted)
		if len(hits()) != 1 || time.Since(started) > 500*time.Millisecond {
			t.Fatalf("Retry-After %s: %d attempts in %v", c.retryAfter, len(hits()), time.Since(started))
		}
	}
}

func TestContextDeadlineEndsARetryAfterWait(t *testing.T) {
	url, hits := scripted(t, func(int) answer { return rateLimited("5") })
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	started := time.Now()
	_, err := tp.Sessions.Status(ctx, "sess_x")
	// The last answer is the error: the caller learns it was rate limited.
	apiError(t, err, "rate_limited", toffeepay.CodeResourceExhausted)
	if took := time.Since(started); len(hits()) != 1 || took < 250*time.Millisecond || took > 2*time.Second {
		t.Fatalf("%d attempts in %v", len(hits()), took)
	}
}

func TestRefusalsAreNotRetriedARetryAfterNotwithstanding(t *testing.T) {
	for _, c := range []struct {
		status       int
		code, reason string
	}{
		{409, toffeepay.CodeAborted, "already_exists"},
		{413, toffeepay.CodeResourceExhausted, "request_too_large"},
		{429, toffeepay.CodeResourceExhausted, "quota_exceeded"},
		{400, toffeepay.CodeInvalidArgument, "invalid_currency"},
	} {
		url, hits := scripted(t, func(int) answer {
			return answer{c.status, map[string]string{"code": c.code, "message": c.reason + ": no"}, map[string]string{"Retry-After": "0"}}
		})
		tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(time.Millisecond))
		_, err := tp.Sessions.Create(context.Background(), &toffeepay.CreateSessionRequest{GameID: "g", UserID: "p", Item: item})
		e := apiError(t, err, c.reason, c.code)
		if len(hits()) != 1 || e.Temporary() || e.HTTPStatus != c.status {
			t.Fatalf("%s: %d attempts, %+v", c.reason, len(hits()), e)
		}
	}
	// A request that cannot be made (a malformed base URL) is not retried either.
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL("http://[::1"), toffeepay.WithRetryDelay(time.Second))
	started := time.Now()
	_, err := tp.Sessions.Status(context.Background(), "sess_x")
	var e *toffeepay.Error
	if !errors.As(err, &e) || e.Code != toffeepay.CodeInvalidArgument || e.Temporary() || time.Since(started) > 500*time.Millisecond {
		t.Fatalf("%v after %v", err, time.Since(started))
	}
}

// errorAnswer is a refusal as the server answers it (src/toffeepay_server/api/errors.py): Connect's
// JSON error with a google.rpc.ErrorInfo{reason, domain: "toffeepay.dev"} detail.
func errorAnswer(status int, code, reason, sentence string) answer {
	info := append(append([]byte{0x0a, byte(len(reason))}, reason...), append([]byte{0x12, 13}, "toffeepay.dev"...)...)
	return answer{status: status, body: map[string]any{
		"code":    code,
		"message": reason + ": " + sentence,
		"details": []map[string]any{{"type": "google.rpc.ErrorInfo", "value": base64.RawStdEncoding.EncodeToString(info)}},
	}}
}

// inUse is the server's answer to a request whose Idempotency-Key is held by one still running.
func inUse() answer {
	return errorAnswer(409, toffeepay.CodeAborted, "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed")
}

func TestIdempotencyKeyInUseIsRetriedWithOneKey(t *testing.T) {
	url, hits := scripted(t, func(n int) answer {
		if n == 0 {
			return inUse()
		}
		return sessionAnswer
	})
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(100*time.Millisecond))
	session, err := tp.Sandbox.ExpireSession(context.Background(), "sess_x")
	if err != nil || session.ID != "sess_x" {
		t.Fatalf("%+v, %v", session, err)
	}
	h := hits()
	if len(h) != 2 || h[0].key == "" || h[0].key != h[1].key {
		t.Fatalf("attempts %+v", h)
	}
	// No Retry-After: the backoff, between half and all of 100 ms.
	if waited := h[1].at.Sub(h[0].at); waited < 45*time.Millisecond || waited > 600*time.Millisecond {
		t.Fatalf("waited %v", waited)
	}
}

func TestIdempotencyKeyInUseGivesUpAfterMaxRetries(t *testing.T) {
	url, hits := scripted(t, func(int) answer { return inUse() })
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithMaxRetries(2), toffeepay.WithRetryDelay(time.Millisecond))
	_, err := tp.Sessions.Create(context.Background(), &toffeepay.CreateSessionRequest{GameID: "g", UserID: "p", Item: item}, toffeepay.WithIdempotencyKey("order-1"))
	e := apiError(t, err, "idempotency_key_in_use", toffeepay.CodeAborted)
	if e.HTTPStatus != 409 || e.RequestID != "req_3" || !e.Temporary() {
		t.Fatalf("%+v", e)
	}
	h := hits()
	if len(h) != 3 || h[0].key != "order-1" || h[1].key != "order-1" || h[2].key != "order-1" {
		t.Fatalf("attempts %+v", h)
	}
}

// plainFirst is a local HTTP server answering its first request `status` with a body that is not a
// Connect error (a proxy's page), and the others with a session; hits counts the requests.
func plainFirst(t *testing.T, status int) (url string, hits func() []hit) {
	t.Helper()
	var mu sync.Mutex
	var seen []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, hit{at: time.Now(), key: r.Header.Get("Idempotency-Key")})
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<h1>%d</h1>", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(sessionAnswer.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []hit {
		mu.Lock()
		defer mu.Unlock()
		return append([]hit(nil), seen...)
	}
}

func TestRequestTimeout408IsRetriedWithOneKey(t *testing.T) {
	url, hits := scripted(t, func(n int) answer {
		if n == 0 {
			return errorAnswer(408, toffeepay.CodeDeadlineExceeded, "request_timeout", "the request body did not arrive within 10 s of its headers")
		}
		return sessionAnswer
	})
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(time.Millisecond))
	if _, err := tp.Sandbox.ExpireSession(context.Background(), "sess_x"); err != nil {
		t.Fatal(err)
	}
	if h := hits(); len(h) != 2 || h[0].key == "" || h[0].key != h[1].key {
		t.Fatalf("attempts %+v", h)
	}
	// A 408 from a proxy, without a Connect body, too.
	url, hits = plainFirst(t, 408)
	tp = toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(time.Millisecond))
	if _, err := tp.Sandbox.ExpireSession(context.Background(), "sess_x"); err != nil || len(hits()) != 2 {
		t.Fatalf("%v after %d attempts", err, len(hits()))
	}
}

func TestWhichStatusesAreRetried(t *testing.T) {
	// Whatever the body: 500, 502, 503, 504 (and 408) are retried; 501, 505 and 4xx are not.
	for _, c := range []struct {
		status  int
		retried bool
	}{{500, true}, {502, true}, {503, true}, {504, true}, {501, false}, {505, false}, {400, false}, {409, false}, {429, false}} {
		url, hits := plainFirst(t, c.status)
		tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(time.Millisecond))
		_, err := tp.Sandbox.ExpireSession(context.Background(), "sess_x")
		var e *toffeepay.Error
		if c.retried && (err != nil || len(hits()) != 2) || !c.retried && (!errors.As(err, &e) || e.HTTPStatus != c.status || e.Temporary() || len(hits()) != 1) {
			t.Fatalf("HTTP %d: %v after %d attempts", c.status, err, len(hits()))
		}
	}
	// The Connect errors a server answers with: unimplemented (501) is not retried, internal (500)
	// and unavailable (503) are.
	for _, c := range []struct {
		status  int
		code    string
		retried bool
	}{{501, toffeepay.CodeUnimplemented, false}, {500, toffeepay.CodeInternal, true}, {503, toffeepay.CodeUnavailable, true}} {
		url, hits := scripted(t, func(n int) answer {
			if n == 0 {
				return answer{status: c.status, body: map[string]string{"code": c.code, "message": c.code + ": x"}}
			}
			return answer{status: 200, body: map[string]string{"id": "sess_x", "session_id": "sess_x", "status": "paid"}}
		})
		tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(url), toffeepay.WithRetryDelay(time.Millisecond))
		_, err := tp.Sessions.Status(context.Background(), "sess_x")
		var e *toffeepay.Error
		if c.retried && (err != nil || len(hits()) != 2) || !c.retried && (!errors.As(err, &e) || e.Code != c.code || len(hits()) != 1) {
			t.Fatalf("%d %s: %v after %d attempts", c.status, c.code, err, len(hits()))
		}
	}
}

func TestConnectionResetIsRetriedWithOneKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		n := len(keys)
		mu.Unlock()
		if n == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(sessionAnswer.body)
	}))
	defer srv.Close()
	tp := toffeepay.NewClient("sk_test_x", toffeepay.WithBaseURL(srv.URL), toffeepay.WithRetryDelay(time.Millisecond))
	if _, err := tp.Sandbox.ExpireSession(context.Background(), "sess_x"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("attempts' keys %v", keys)
	}
}

func TestReturnTokenFromThePaymentPage(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	session, err := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: player(), Item: item, ReturnURL: "mygame://payment-complete?from=go"})
	if err != nil {
		t.Fatal(err)
	}
	// The player cancels on the payment page, a browser's way: the page, its CSRF cookie and form.
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page, err := browser.Get(session.URL)
	if err != nil {
		t.Fatal(err)
	}
	form, _ := io.ReadAll(page.Body)
	page.Body.Close()
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(form)
	action := regexp.MustCompile(`<form method="post" action="([^"]+)" class="cancel">`).FindSubmatch(form)
	if csrf == nil || action == nil {
		t.Fatalf("no cancel form in %s", form)
	}
	fields := url.Values{"csrf_token": {string(csrf[1])}}
	cancel, _ := http.NewRequest(http.MethodPost, string(action[1]), strings.NewReader(fields.Encode()))
	cancel.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range page.Cookies() {
		cancel.AddCookie(c)
	}
	answer, err := browser.Do(cancel)
	if err != nil {
		t.Fatal(err)
	}
	answer.Body.Close()
	if answer.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel answered %d", answer.StatusCode)
	}
	// The result page sends the browser on to the return_url, and offers it as a button.
	location, _ := url.Parse(answer.Header.Get("Location"))
	resultPage, err := browser.Get(page.Request.URL.ResolveReference(location).String())
	if err != nil {
		t.Fatal(err)
	}
	result, _ := io.ReadAll(resultPage.Body)
	resultPage.Body.Close()
	next := regexp.MustCompile(`<a class="button primary" href="([^"]+)">Return to the game</a>`).FindSubmatch(result)
	if next == nil {
		t.Fatalf("no way back to the game in %s", result)
	}
	back, err := url.Parse(html.UnescapeString(string(next[1])))
	if err != nil || back.Query().Get("session_id") != session.ID {
		t.Fatalf("back to %q: %v", next[1], err)
	}
	token := back.Query().Get("token")
	keys, err := http.Get(tp.BaseURL() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(keys.Body)
	keys.Body.Close()
	claims, err := toffeepay.VerifyReturnToken(token, jwks, game)
	if err != nil || claims.SessionID != session.ID || claims.GameID != game || claims.Status != "cancelled" || claims.ExpiresAt-claims.IssuedAt != 600 {
		t.Fatalf("claims %+v %v", claims, err)
	}
	for reason, err := range map[string]error{
		"wrong_game":  second(toffeepay.VerifyReturnToken(token, jwks, "other_game")),
		"expired":     second(toffeepay.VerifyReturnTokenAt(token, jwks, game, time.Unix(claims.ExpiresAt, 0))),
		"unknown_key": second(toffeepay.VerifyReturnToken(token, []byte(`{"keys": []}`), game)),
	} {
		var refused *toffeepay.SignatureVerificationError
		if !errors.As(err, &refused) || refused.Reason != reason {
			t.Fatalf("want %s, got %v", reason, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestRefunds(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	settled := func(id string) *toffeepay.Refund {
		for i := 0; i < 200; i++ {
			refund, err := tp.Refunds.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if refund.Status != "pending" {
				return refund
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("refund %s still pending", id)
		return nil
	}
	userID := player()
	session, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: userID, Item: item})
	payment, err := tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: session.ID})
	if err != nil {
		t.Fatal(err)
	}
	part, err := tp.Refunds.Create(ctx, &toffeepay.RefundPaymentRequest{PaymentID: payment.ID, Amount: toffeepay.Int32(100), Reason: "duplicate"})
	if err != nil || part.SessionID != session.ID || part.Amount != 100 || part.Reason != "duplicate" {
		t.Fatalf("part %+v %v", part, err)
	}
	if got := settled(part.ID); got.Status != "succeeded" || got.SucceededAt == nil {
		t.Fatalf("part settled %+v", got)
	}
	_, err = tp.Refunds.Create(ctx, &toffeepay.RefundPaymentRequest{PaymentID: payment.ID, Amount: toffeepay.Int32(400)})
	apiError(t, err, "invalid_refund_amount", toffeepay.CodeInvalidArgument)
	failing, err := tp.Sandbox.CreateRefund(ctx, &toffeepay.CreateRefundRequest{PaymentID: payment.ID, Amount: toffeepay.Int32(50), Outcome: "failed"})
	if err != nil || settled(failing.ID).Status != "failed" {
		t.Fatalf("failing refund %+v %v", failing, err)
	}
	rest, err := tp.Refunds.Create(ctx, &toffeepay.RefundPaymentRequest{PaymentID: payment.ID})
	if err != nil || rest.Amount != 399 || settled(rest.ID).Status != "succeeded" {
		t.Fatalf("rest %+v %v", rest, err)
	}
	if got, _ := tp.Payments.Get(ctx, payment.ID); got.AmountRefunded != 499 || got.RefundedAt == nil {
		t.Fatalf("payment after refunds %+v", got)
	}
	page, err := tp.Refunds.List(ctx, &toffeepay.ListRefundsRequest{PaymentID: payment.ID, Limit: 2})
	if err != nil || page.Total != 3 || len(page.Data) != 2 {
		t.Fatalf("refunds %+v %v", page, err)
	}
	var ids []string
	for it := page.Iter(); it.Next(ctx); {
		ids = append(ids, it.Value().ID)
	}
	if strings.Join(ids, ",") != strings.Join([]string{rest.ID, failing.ID, part.ID}, ",") {
		t.Fatalf("walked %v", ids)
	}
	declined, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: userID, Item: item})
	failed, _ := tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: declined.ID, Outcome: "card_declined"})
	_, err = tp.Refunds.Create(ctx, &toffeepay.RefundPaymentRequest{PaymentID: failed.ID})
	apiError(t, err, "payment_not_refundable", toffeepay.CodeFailedPrecondition)
}

func TestLegacyCallbackReceivedAndVerified(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	var mu sync.Mutex
	var secret string
	callbacks := make(chan map[string]string, 8)
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		s := secret
		mu.Unlock()
		fields, err := toffeepay.VerifyLegacyCallback(r.PostForm, s)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		callbacks <- fields
	})}
	go receiver.Serve(listener)
	defer receiver.Close()
	mu.Lock()
	created, err := tp.Webhooks.CreateEndpoint(ctx, &toffeepay.CreateEndpointRequest{URL: "http://" + listener.Addr().String() + "/callback", Format: "legacy_form"})
	if err == nil {
		secret = created.Secret
	}
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	session, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: "player&admin=1", Item: item, Metadata: map[string]string{"note": "a&b=c"}})
	payment, err := tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: session.ID})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]string
	deadline := time.After(30 * time.Second)
	for fields["transaction_token"] != session.ID {
		select {
		case fields = <-callbacks:
		case <-deadline:
			t.Fatal("no verified callback for the session arrived in 30 s")
		}
	}
	if fields["transaction_id"] != payment.ID || fields["status"] != "PAID" || fields["paid_amount"] != "499" ||
		fields["transaction_token"] != session.ID || fields["user_id"] != "player%26admin%3D1" {
		t.Fatalf("fields %v", fields)
	}
	var custom map[string]string
	if err := json.Unmarshal([]byte(fields["custom_parameters"]), &custom); err != nil || custom["note"] != "a&b=c" {
		t.Fatalf("custom_parameters %q", fields["custom_parameters"])
	}
	tampered := url.Values{}
	for k, v := range fields {
		tampered.Set(k, v)
	}
	tampered.Set("amount", "1")
	var refused *toffeepay.SignatureVerificationError
	if _, err := toffeepay.VerifyLegacyCallback(tampered, secret); !errors.As(err, &refused) || refused.Reason != "bad_signature" {
		t.Fatalf("tampered: %v", err)
	}
	if err := tp.Webhooks.DeleteEndpoint(ctx, created.Endpoint.ID); err != nil {
		t.Fatal(err)
	}
}

func TestDeliveryAttemptsTestEventAndReplay(t *testing.T) {
	tp, game := client(t)
	ctx := context.Background()
	var mu sync.Mutex
	var secret string
	var received []*toffeepay.Event
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		event, err := toffeepay.ConstructEvent(body, r.Header.Get(toffeepay.SignatureHeader), secret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		received = append(received, event)
	})}
	go receiver.Serve(listener)
	defer receiver.Close()
	count := func(match func(*toffeepay.Event) bool) (n int, ids map[string]bool) {
		mu.Lock()
		defer mu.Unlock()
		ids = map[string]bool{}
		for _, e := range received {
			if match(e) {
				n++
				ids[e.ID] = true
			}
		}
		return n, ids
	}
	arrived := func(want int, match func(*toffeepay.Event) bool) map[string]bool {
		for i := 0; i < 400; i++ {
			if n, ids := count(match); n >= want {
				return ids
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("fewer than %d matching events arrived", want)
		return nil
	}
	since := time.Now().Add(-time.Minute)
	mu.Lock()
	created, err := tp.Webhooks.CreateEndpoint(ctx, &toffeepay.CreateEndpointRequest{URL: "http://" + listener.Addr().String() + "/hooks", Events: []string{"session.paid"}})
	if err == nil {
		secret = created.Secret
	}
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	endpointID := created.Endpoint.ID
	ping, err := tp.Webhooks.SendTestEvent(ctx, endpointID)
	if err != nil || ping.Status != "succeeded" || ping.Trigger != "test" || ping.HTTPStatus == nil || *ping.HTTPStatus != 200 {
		t.Fatalf("test event %+v %v", ping, err)
	}
	arrived(1, func(e *toffeepay.Event) bool { return e.Event == "ping" && e.Data["endpoint_id"] == endpointID })
	session, _ := tp.Sessions.Create(ctx, &toffeepay.CreateSessionRequest{GameID: game, UserID: player(), Item: item})
	if _, err := tp.Sandbox.PaySession(ctx, &toffeepay.PaySessionRequest{SessionID: session.ID}); err != nil {
		t.Fatal(err)
	}
	paid := func(e *toffeepay.Event) bool { return e.Event == "session.paid" && e.Data["session_id"] == session.ID }
	arrived(1, paid)
	// The answer is in; its attempt is recorded a moment later.
	attempts, err := tp.Webhooks.ListDeliveryAttempts(ctx, &toffeepay.ListDeliveryAttemptsRequest{EndpointID: endpointID, Limit: 1})
	for i := 0; i < 200 && err == nil && attempts.Total < 2; i++ {
		time.Sleep(50 * time.Millisecond)
		attempts, err = tp.Webhooks.ListDeliveryAttempts(ctx, &toffeepay.ListDeliveryAttemptsRequest{EndpointID: endpointID, Limit: 1})
	}
	if err != nil || attempts.Total < 2 || len(attempts.Data) != 1 || !attempts.HasMore {
		t.Fatalf("attempts %+v %v", attempts, err)
	}
	scheduled := false
	for it := attempts.Iter(); it.Next(ctx); {
		scheduled = scheduled || (it.Value().Trigger == "scheduled" && it.Value().Status == "succeeded")
	}
	if !scheduled {
		t.Fatal("no succeeded scheduled attempt listed")
	}
	replay, err := tp.Webhooks.ReplayEvents(ctx, &toffeepay.ReplayEventsRequest{EndpointID: endpointID, Types: []string{"session.paid"}, From: &since})
	if err != nil || replay.Replayed < 1 {
		t.Fatalf("replay %+v %v", replay, err)
	}
	if ids := arrived(2, paid); len(ids) != 1 {
		t.Fatalf("a replay carries the same event id: %v", ids)
	}
	if err := tp.Webhooks.DeleteEndpoint(ctx, endpointID); err != nil {
		t.Fatal(err)
	}
}
