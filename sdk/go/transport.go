package toffeepay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"strconv"
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

// WithMaxRetries sets how many further attempts follow a network failure, an HTTP 408, 500,
// 502, 503 or 504 answer, "rate_limited" (429) or "idempotency_key_in_use" (409) (default 2).
// Any other answer (a 501 included) is never retried; see Error.Temporary.
func WithMaxRetries(n int) Option { return func(t *transport) { t.maxRetries = n } }

// WithRetryDelay sets the first backoff (default 500 ms), doubling up to 8 s, with jitter. An
// answer's Retry-After, when it has one, is the wait instead.
func WithRetryDelay(d time.Duration) Option { return func(t *transport) { t.retryDelay = d } }

// WithMaxRetryAfter sets the longest Retry-After a retry waits for (default 10 s); an answer
// asking for longer is returned at once rather than block the caller.
func WithMaxRetryAfter(d time.Duration) Option { return func(t *transport) { t.maxRetryAfter = d } }

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
	apiKey        string
	baseURL       string
	http          *http.Client
	timeout       time.Duration
	maxRetries    int
	retryDelay    time.Duration
	maxRetryAfter time.Duration
}

// call sends one logical call: JSON over POST, one Idempotency-Key across the attempts of a
// mutating RPC, retries of what Error.Temporary says may succeed later only.
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
	for retry := 0; ; retry++ {
		err := t.attempt(ctx, path, key, body, out)
		var apiErr *Error
		if err == nil || !errors.As(err, &apiErr) || !apiErr.Temporary() || retry >= t.maxRetries || ctx.Err() != nil {
			return err
		}
		wait, ok := t.wait(retry, apiErr.retryAfter)
		if !ok {
			return err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

// wait is how long to wait before retry number retry (0 first), given the answer's Retry-After
// header; false to give up, when the server asks for more than maxRetryAfter.
func (t *transport) wait(retry int, retryAfter string) (time.Duration, bool) {
	if seconds, ok := parseRetryAfter(retryAfter); ok {
		if math.IsNaN(seconds) || seconds > t.maxRetryAfter.Seconds() {
			return 0, false
		}
		if seconds < 0 {
			seconds = 0
		}
		return time.Duration(seconds * float64(time.Second)), true
	}
	backoff := t.retryDelay
	for i := 0; i < retry && backoff > 0 && backoff < 8*time.Second; i++ {
		backoff *= 2
	}
	if backoff > 8*time.Second {
		backoff = 8 * time.Second
	} else if backoff < 0 {
		backoff = 0
	}
	jitter, _ := rand.Int(rand.Reader, big.NewInt(int64(backoff/2)+1))
	return backoff/2 + time.Duration(jitter.Int64()), true
}

// parseRetryAfter reads a Retry-After in seconds; the HTTP-date form counts as none.
func parseRetryAfter(value string) (float64, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	seconds, err := strconv.ParseFloat(value, 64)
	return seconds, err == nil
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
		e := errorFromAnswer(response.StatusCode, answer, requestID)
		e.retryAfter = response.Header.Get("Retry-After")
		return e
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
