package toffeepay

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a webhook's or callback's timestamp may be from now.
const DefaultTolerance = 300 * time.Second

// SignatureHeader is the header of a webhook's signature.
const SignatureHeader = "X-ToffeePay-Signature"

// SignatureVerificationError says a webhook, callback or return token is not provably from
// ToffeePay, or not recent: do not act on it. Reason is one of "malformed_header",
// "bad_signature", "stale_timestamp" (webhooks and callbacks), "unknown_field" and
// "malformed_value" (a callback field ToffeePay does not send, a value holding a raw & or =),
// or for return tokens "malformed", "unknown_key", "bad_signature", "expired", "wrong_game".
type SignatureVerificationError struct {
	Reason  string
	Message string
}

func (e *SignatureVerificationError) Error() string {
	return "toffeepay: " + e.Reason + ": " + e.Message
}

func refuse(reason, format string, args ...any) error {
	return &SignatureVerificationError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// VerifyOptions tune a verification; the zero value means the defaults.
type VerifyOptions struct {
	// Secrets to accept, e.g. both during a rotation.
	Secrets []string
	// How far the timestamp may be from now; 0 means DefaultTolerance.
	Tolerance time.Duration
	// The time to verify at; zero means time.Now().
	Now time.Time
}

func (o VerifyOptions) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

func (o VerifyOptions) tolerance() time.Duration {
	if o.Tolerance == 0 {
		return DefaultTolerance
	}
	return o.Tolerance
}

func (o VerifyOptions) secrets() ([]string, error) {
	if len(o.Secrets) == 0 {
		return nil, fmt.Errorf("toffeepay: a secret is required")
	}
	for _, s := range o.Secrets {
		if s == "" {
			return nil, fmt.Errorf("toffeepay: a secret is empty")
		}
	}
	return o.Secrets, nil
}

func sign(secret string, message []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(message)
	return hex.EncodeToString(mac.Sum(nil))
}

// anyEqual compares every pair in constant time, so timing tells nothing of which matched.
func anyEqual(expected, given []string) bool {
	matched := 0
	for _, want := range expected {
		for _, got := range given {
			matched |= subtle.ConstantTimeCompare([]byte(want), []byte(got))
		}
	}
	return matched == 1
}

func outside(now time.Time, unix int64, tolerance time.Duration) (bool, float64) {
	skew := math.Abs(float64(now.UnixNano())/1e9 - float64(unix))
	return skew > tolerance.Seconds(), skew
}

var digits = regexp.MustCompile(`^[0-9]+$`)

// ComputeSignature is the hex v1 signature of body at timestamp with secret.
func ComputeSignature(body []byte, timestamp int64, secret string) string {
	return sign(secret, append([]byte(strconv.FormatInt(timestamp, 10)+"."), body...))
}

// ParseSignatureHeader returns t and every v1 of an X-ToffeePay-Signature header.
func ParseSignatureHeader(header string) (int64, []string, error) {
	var timestamp int64 = -1
	var signatures []string
	for _, part := range strings.Split(header, ",") {
		key, value, found := strings.Cut(part, "=")
		if !found {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case key == "t" && timestamp < 0 && digits.MatchString(value):
			if n, err := strconv.ParseInt(value, 10, 64); err == nil {
				timestamp = n
			}
		case key == "v1" && value != "":
			signatures = append(signatures, strings.ToLower(value))
		}
	}
	if timestamp < 0 || len(signatures) == 0 {
		return 0, nil, refuse("malformed_header", "unable to extract a timestamp and v1 signatures from the header (expected t=<unix seconds>,v1=<hex>)")
	}
	return timestamp, signatures, nil
}

// VerifyWebhook checks an X-ToffeePay-Signature header against the raw body.
func VerifyWebhook(body []byte, header string, opts VerifyOptions) error {
	secrets, err := opts.secrets()
	if err != nil {
		return err
	}
	timestamp, signatures, err := ParseSignatureHeader(header)
	if err != nil {
		return err
	}
	expected := make([]string, len(secrets))
	for i, s := range secrets {
		expected[i] = ComputeSignature(body, timestamp, s)
	}
	if !anyEqual(expected, signatures) {
		return refuse("bad_signature", "no v1 signature matches the expected signature for this payload (check the secret, and that you pass the raw request body)")
	}
	if stale, skew := outside(opts.now(), timestamp, opts.tolerance()); stale {
		return refuse("stale_timestamp", "timestamp %d is %.0f s from now, more than the tolerance of %.0f s (replayed or clock skew)", timestamp, skew, opts.tolerance().Seconds())
	}
	return nil
}

// ConstructEvent verifies a JSON webhook and returns its event. body must be the raw request
// body, header the X-ToffeePay-Signature header. Events can repeat and arrive out of order:
// deduplicate by event.ID. Fails with *SignatureVerificationError.
func ConstructEvent(body []byte, header, secret string) (*Event, error) {
	return ConstructEventWithOptions(body, header, VerifyOptions{Secrets: []string{secret}})
}

// ConstructEventWithOptions is ConstructEvent with several secrets (a rotation), another
// tolerance, or another time.
func ConstructEventWithOptions(body []byte, header string, opts VerifyOptions) (*Event, error) {
	if err := VerifyWebhook(body, header, opts); err != nil {
		return nil, err
	}
	event := new(Event)
	if err := json.Unmarshal(body, event); err != nil {
		return nil, refuse("malformed_header", "the webhook body is not a JSON event: %v", err)
	}
	return event, nil
}

// LegacyFields are the fields a legacy callback carries; any other field is refused.
var LegacyFields = []string{
	"transaction_id", "status", "amount", "paid_amount", "currency", "site_id", "game_id",
	"user_id", "transaction_token", "custom_parameters", "timestamp", "hash",
}

// ComputeLegacyHash is the hex HMAC-SHA256 of the fields but hash, as k=v sorted by key, joined by &.
func ComputeLegacyHash(fields map[string]string, secret string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "hash" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = k + "=" + fields[k]
	}
	return sign(secret, []byte(strings.Join(pairs, "&")))
}

// VerifyLegacyCallback checks a legacy form callback (the parsed form, e.g. r.PostForm) and
// returns its fields. Fails with *SignatureVerificationError. Callbacks can repeat:
// deduplicate by (transaction_id, status).
func VerifyLegacyCallback(form url.Values, secret string) (map[string]string, error) {
	return VerifyLegacyCallbackWithOptions(form, VerifyOptions{Secrets: []string{secret}})
}

// VerifyLegacyCallbackWithOptions is VerifyLegacyCallback with several secrets, another
// tolerance, or another time. It refuses unknown fields and values holding a raw & or =
// (the signed string could be split another way), then checks the hash, then that
// timestamp is within the tolerance.
func VerifyLegacyCallbackWithOptions(form url.Values, opts VerifyOptions) (map[string]string, error) {
	secrets, err := opts.secrets()
	if err != nil {
		return nil, err
	}
	fields := make(map[string]string, len(form))
	for key, values := range form {
		if len(values) != 1 {
			return nil, refuse("malformed_header", "field %s appears %d times", key, len(values))
		}
		known := false
		for _, k := range LegacyFields {
			known = known || k == key
		}
		if !known {
			return nil, refuse("unknown_field", "unknown field %q: ToffeePay does not send it", key)
		}
		if strings.ContainsAny(values[0], "&=") {
			return nil, refuse("malformed_value", "field %s holds a raw & or =, which ToffeePay never sends", key)
		}
		fields[key] = values[0]
	}
	given := strings.ToLower(fields["hash"])
	if given == "" {
		return nil, refuse("malformed_header", "the callback has no hash field")
	}
	stamp := fields["timestamp"]
	timestamp, err := strconv.ParseInt(stamp, 10, 64)
	if !digits.MatchString(stamp) || err != nil {
		return nil, refuse("malformed_header", "the callback has no timestamp field (unix seconds)")
	}
	expected := make([]string, len(secrets))
	for i, s := range secrets {
		expected[i] = ComputeLegacyHash(fields, s)
	}
	if !anyEqual(expected, []string{given}) {
		return nil, refuse("bad_signature", "hash does not match the callback's fields")
	}
	if stale, skew := outside(opts.now(), timestamp, opts.tolerance()); stale {
		return nil, refuse("stale_timestamp", "timestamp %d is %.0f s from now, more than the tolerance of %.0f s", timestamp, skew, opts.tolerance().Seconds())
	}
	return fields, nil
}

// ReturnClaims are what a return token says about the session the player comes back from.
type ReturnClaims struct {
	SessionID string `json:"session_id"`
	GameID    string `json:"game_id"`
	UserID    string `json:"user_id"`
	// The session's status when the player was sent back: paid, failed, cancelled.
	Status string `json:"status"`
	// Issued at and expires at, unix seconds.
	IssuedAt  int64 `json:"iat"`
	ExpiresAt int64 `json:"exp"`
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
}

// VerifyReturnToken verifies the token ToffeePay adds to return_url (a compact JWS, EdDSA
// over Ed25519) with the installation's JWKS (the body of /.well-known/jwks.json) for your
// game, and returns its claims. It lets a game show the outcome at once; granting still
// follows the webhook or GetSessionStatus. Fails with *SignatureVerificationError.
func VerifyReturnToken(token string, jwks []byte, gameID string) (*ReturnClaims, error) {
	return VerifyReturnTokenAt(token, jwks, gameID, time.Now())
}

var base64URL = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

// VerifyReturnTokenAt is VerifyReturnToken at another time.
func VerifyReturnTokenAt(token string, jwks []byte, gameID string, now time.Time) (*ReturnClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] == "" || !base64URL.MatchString(parts[0]+parts[1]+parts[2]) {
		return nil, refuse("malformed", "not a compact JWS (header.payload.signature)")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if decodePart(parts[0], &header) != nil {
		return nil, refuse("malformed", "the token's header is not base64url JSON")
	}
	if header.Alg != "EdDSA" {
		return nil, refuse("malformed", "alg %q is not EdDSA", header.Alg)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("toffeepay: the JWKS is not JSON: %w", err)
	}
	var key *jwk
	for i := range set.Keys {
		if set.Keys[i].Kid == header.Kid {
			key = &set.Keys[i]
			break
		}
	}
	if key == nil {
		return nil, refuse("unknown_key", "no key with kid %q in the JWKS", header.Kid)
	}
	public, err := base64.RawURLEncoding.DecodeString(key.X)
	if key.Kty != "OKP" || key.Crv != "Ed25519" || err != nil || len(public) != ed25519.PublicKeySize {
		return nil, refuse("unknown_key", "key %q is not an Ed25519 key", key.Kid)
	}
	signature, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(ed25519.PublicKey(public), []byte(parts[0]+"."+parts[1]), signature) {
		return nil, refuse("bad_signature", "the signature does not match the token")
	}
	var claims ReturnClaims
	if decodePart(parts[1], &claims) != nil || claims.SessionID == "" || claims.GameID == "" || claims.ExpiresAt == 0 {
		return nil, refuse("malformed", "the token's claims are not complete")
	}
	if now.Unix() >= claims.ExpiresAt {
		return nil, refuse("expired", "the token expired at %d", claims.ExpiresAt)
	}
	if claims.IssuedAt > now.Unix()+60 {
		return nil, refuse("malformed", "the token is issued in the future (%d)", claims.IssuedAt)
	}
	if claims.GameID != gameID {
		return nil, refuse("wrong_game", "the token is for game %q, not %q", claims.GameID, gameID)
	}
	return &claims, nil
}

func decodePart(part string, into any) error {
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}
