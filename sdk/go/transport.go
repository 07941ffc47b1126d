package toffeepay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// Version is this SDK's version, sent in the User-Agent.
const Version = "0.1.0"

// DefaultBaseURL is where the client looks for the API unless WithBaseURL says otherwise.
const DefaultBaseURL = "http://127.0.0.1:8000"

// Option configures a Client.
type Option func(*transport)

// WithBaseURL sets where the ToffeePay API runs, e.g. "https://pay.example.com".
func WithBaseURL(url string) Option {
	return func(t *transport) { t.baseURL = strings.TrimRight(url, "/") }
}

// WithHTTPClient sets the http.Client to send with (proxies, custom TLS).
func WithHTTPClient(c *http.Client) Option { return func(t *transport) { t.http = c } }

// WithTimeout bounds each attempt of a call (default 30 s); a context deadline bounds the whole call.
func WithTimeout(d time.Duration) Option { return func(t *transport) { t.timeout = d } }

// WithMaxRetries sets how many further attempts follow a network failure or a 5xx answer
// (default 2). A 4xx answer is never retried.
func WithMaxRetries(n int) Option { return func(t *transport) { t.maxRetries = n } }

// WithRetryDelay sets the first backoff (default 500 ms), doubling up to 8 s, with jitter.
func WithRetryDelay(d time.Duration) Option { return func(t *transport) { t.retryDelay = d } }

// CallOption configures one call.
type CallOption func(*callSettings)

type callSettings struct {
	idempotencyKey string
}

// WithIdempotencyKey sends your own Idempotency-Key (e.g. your order id) with a mutating call,
// instead of a fresh random one; within 24 h the same key and body replay the first answer.
func WithIdempotencyKey(key string) CallOption {
	return func(s *callSettings) { s.idempotencyKey = key }
}

type transport struct {
	apiKey     string
	baseURL    string
	http       *http.Client
	timeout    time.Duration
	maxRetries int
	retryDelay time.Duration
}

// call sends one logical call: JSON over POST, one Idempotency-Key across the attempts of a
// mutating RPC, retries of network failures and 5xx answers only.
func (t *transport) call(ctx context.Context, path string, mutating bool, req, out any, opts []CallOption) error {
	var settings callSettings
	for _, o := range opts {
		o(&settings)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return &Error{Code: CodeInvalidArgument, Message: "cannot encode the request: " + err.Error(), Err: err}
	}
	key := settings.idempotencyKey
	if mutating && key == "" {
		key = newUUID()
	}
	for attempt := 0; ; attempt++ {
		err := t.attempt(ctx, path, key, body, out)
		var apiErr *Error
		if err == nil || !errors.As(err, &apiErr) || !apiErr.Temporary() || attempt >= t.maxRetries || ctx.Err() != nil {
			return err
		}
		backoff := t.retryDelay << attempt
		if backoff > 8*time.Second {
			backoff = 8 * time.Second
		}
		jitter, _ := rand.Int(rand.Reader, big.NewInt(int64(backoff/2)+1))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff/2 + time.Duration(jitter.Int64())):
		}
	}
}

func (t *transport) attempt(ctx context.Context, path, key string, body []byte, out any) error {
	if t.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, t.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return &Error{Code: CodeInvalidArgument, Message: err.Error(), Err: err}
	}
	request.Header.Set("Content-Type", "application/json")
	request.Header.Set("Connect-Protocol-Version", "1")
	request.Header.Set("Authorization", "Bearer "+t.apiKey)
	request.Header.Set("User-Agent", "toffeepay-go/"+Version)
	if key != "" {
		request.Header.Set("Idempotency-Key", key)
	}
	response, err := t.http.Do(request)
	if err != nil {
		code := CodeUnavailable
		if errors.Is(err, context.DeadlineExceeded) {
			code = CodeDeadlineExceeded
		} else if errors.Is(err, context.Canceled) {
			code = CodeCanceled
		}
		return &Error{Code: code, Message: "no answer from the API: " + err.Error(), Err: err}
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(response.Body)
	if err != nil {
		return &Error{Code: CodeUnavailable, Message: "the answer broke off: " + err.Error(), Err: err}
	}
	requestID := response.Header.Get("X-Request-Id")
	if response.StatusCode != http.StatusOK {
		return errorFromAnswer(response.StatusCode, answer, requestID)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return &Error{Code: CodeInternal, Message: "cannot decode the answer: " + err.Error(), HTTPStatus: response.StatusCode, RequestID: requestID, Err: err}
	}
	return nil
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("toffeepay: no randomness: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
