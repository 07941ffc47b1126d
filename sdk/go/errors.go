package toffeepay

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Connect codes the API answers with, as Error.Code spells them.
const (
	CodeCanceled           = "canceled"
	CodeUnknown            = "unknown"
	CodeInvalidArgument    = "invalid_argument"
	CodeDeadlineExceeded   = "deadline_exceeded"
	CodeNotFound           = "not_found"
	CodeAlreadyExists      = "already_exists"
	CodePermissionDenied   = "permission_denied"
	CodeResourceExhausted  = "resource_exhausted"
	CodeFailedPrecondition = "failed_precondition"
	CodeAborted            = "aborted"
	CodeOutOfRange         = "out_of_range"
	CodeUnimplemented      = "unimplemented"
	CodeInternal           = "internal"
	CodeUnavailable        = "unavailable"
	CodeDataLoss           = "data_loss"
	CodeUnauthenticated    = "unauthenticated"
)

// Error is every error the client returns for a call: an API refusal, a 5xx, or no answer
// at all (HTTPStatus 0, Reason ""). Branch on Reason, e.g. "invalid_currency" or
// "session_not_pending"; Code is the Connect code, e.g. "invalid_argument".
type Error struct {
	// The Connect code, e.g. "failed_precondition".
	Code string
	// The API's reason code, e.g. "session_not_pending"; "" when no answer came from the API.
	Reason string
	// The sentence, without the reason prefix.
	Message string
	// The HTTP status of the answer; 0 when none arrived.
	HTTPStatus int
	// The answer's X-Request-Id, to quote to an operator.
	RequestID string
	// What failed underneath (a network error), if anything.
	Err error
	// The answer's Retry-After header, the wait before a retry when it has one.
	retryAfter string
}

func (e *Error) Error() string {
	text := e.Message
	if e.Reason != "" {
		text = e.Reason + ": " + text
	}
	if e.RequestID != "" {
		text += " (request id " + e.RequestID + ")"
	}
	return "toffeepay: " + text
}

func (e *Error) Unwrap() error { return e.Err }

// IsConnection reports whether no answer arrived (refused connection, reset, timeout).
func (e *Error) IsConnection() bool { return e.HTTPStatus == 0 }

// Temporary reports whether the same call may succeed later, and so what the client retries:
// no answer (a refused or broken connection, a timeout), an HTTP 408, 500, 502, 503 or 504,
// "rate_limited" (429) or "idempotency_key_in_use" (409: the first request with the same
// Idempotency-Key is still running). Not a 501, nor any other answer.
func (e *Error) Temporary() bool {
	if e.HTTPStatus == 0 {
		// Not a request that could not be made (a malformed base URL) nor a canceled one.
		return e.Code == CodeUnavailable || e.Code == CodeDeadlineExceeded
	}
	if e.Reason == "idempotency_key_in_use" || (e.Code == CodeResourceExhausted && e.Reason == "rate_limited") {
		return true
	}
	switch e.HTTPStatus {
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// reasonPrefix matches "<reason>: <sentence>", how every API refusal starts.
var reasonPrefix = regexp.MustCompile(`^([a-z][a-z0-9_]*): ([\s\S]*)$`)

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"details"`
}

// errorFromAnswer reads a Connect error answer (JSON body, or a bare HTTP status).
func errorFromAnswer(status int, body []byte, requestID string) *Error {
	var wire wireError
	if json.Unmarshal(body, &wire) != nil || wire.Code == "" {
		wire.Code = codeFromHTTPStatus(status)
		wire.Message = strings.TrimSpace(string(body))
		if len(wire.Message) > 200 {
			wire.Message = wire.Message[:200]
		}
		if wire.Message == "" {
			wire.Message = fmt.Sprintf("HTTP %d", status)
		}
	}
	e := &Error{Code: wire.Code, Message: wire.Message, HTTPStatus: status, RequestID: requestID}
	for _, d := range wire.Details {
		if d.Type == "google.rpc.ErrorInfo" {
			if reason := errorInfoReason(d.Value); reason != "" {
				e.Reason = reason
				break
			}
		}
	}
	if m := reasonPrefix.FindStringSubmatch(wire.Message); m != nil {
		if e.Reason == "" {
			e.Reason = m[1]
		}
		if m[1] == e.Reason {
			e.Message = m[2]
		}
	}
	return e
}

// errorInfoReason reads field 1 (reason) of a base64 google.rpc.ErrorInfo.
func errorInfoReason(value string) string {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(value, "="))
	if err != nil {
		return ""
	}
	for len(raw) > 0 {
		tag, n := uvarint(raw)
		if n <= 0 {
			return ""
		}
		raw = raw[n:]
		switch tag & 7 {
		case 0: // varint
			_, n = uvarint(raw)
			if n <= 0 {
				return ""
			}
			raw = raw[n:]
		case 2: // length-delimited
			size, n := uvarint(raw)
			if n <= 0 || uint64(len(raw)-n) < size {
				return ""
			}
			if tag>>3 == 1 {
				return string(raw[n : n+int(size)])
			}
			raw = raw[n+int(size):]
		case 1:
			if len(raw) < 8 {
				return ""
			}
			raw = raw[8:]
		case 5:
			if len(raw) < 4 {
				return ""
			}
			raw = raw[4:]
		default:
			return ""
		}
	}
	return ""
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return x, i + 1
		}
	}
	return 0, 0
}

func codeFromHTTPStatus(status int) string {
	switch status {
	case 400:
		return CodeInvalidArgument
	case 401:
		return CodeUnauthenticated
	case 403:
		return CodePermissionDenied
	case 404:
		return CodeUnimplemented
	case 408:
		return CodeDeadlineExceeded
	case 409:
		return CodeAborted
	case 412:
		return CodeFailedPrecondition
	case 413, 429:
		return CodeResourceExhausted
	case 502, 503, 504:
		return CodeUnavailable
	}
	return CodeUnknown
}
