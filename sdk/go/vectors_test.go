package toffeepay_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	toffeepay "toffeepay.dev/sdk/go"
)

// The shared vectors of sdk/testdata, which every ToffeePay SDK must pass.

type vector struct {
	Name    string            `json:"name"`
	Secret  string            `json:"secret"`
	Body    string            `json:"body"`
	Header  string            `json:"header"`
	Fields  map[string]string `json:"fields"`
	Token   string            `json:"token"`
	GameID  string            `json:"game_id"`
	Now     int64             `json:"now"`
	Valid   bool              `json:"valid"`
	Error   string            `json:"error"`
	Claims  map[string]any    `json:"claims"`
	EventID string            `json:"event_id"`
}

type vectorFile struct {
	Tolerance int64           `json:"tolerance"`
	JWKS      json.RawMessage `json:"jwks"`
	Vectors   []vector        `json:"vectors"`
}

func load(t *testing.T, name string) vectorFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("%s has no vectors", name)
	}
	return f
}

func expect(t *testing.T, v vector, err error) bool {
	t.Helper()
	if v.Valid {
		if err != nil {
			t.Fatalf("%s: want valid, got %v", v.Name, err)
		}
		return true
	}
	var refused *toffeepay.SignatureVerificationError
	if !errors.As(err, &refused) {
		t.Fatalf("%s: want a SignatureVerificationError %q, got %v", v.Name, v.Error, err)
	}
	if refused.Reason != v.Error {
		t.Fatalf("%s: want reason %q, got %q (%v)", v.Name, v.Error, refused.Reason, err)
	}
	return false
}

func TestWebhookVectors(t *testing.T) {
	f := load(t, "webhooks.json")
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			opts := toffeepay.VerifyOptions{Secrets: []string{v.Secret}, Tolerance: time.Duration(f.Tolerance) * time.Second, Now: time.Unix(v.Now, 0)}
			event, err := toffeepay.ConstructEventWithOptions([]byte(v.Body), v.Header, opts)
			if expect(t, v, err) {
				var body struct{ ID, Event string }
				_ = json.Unmarshal([]byte(v.Body), &body)
				if event.ID != body.ID || event.Event != body.Event || event.Data["payment_id"] == nil {
					t.Fatalf("event %+v", event)
				}
			}
		})
	}
}

func TestLegacyCallbackVectors(t *testing.T) {
	f := load(t, "legacy_callbacks.json")
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			form, err := url.ParseQuery(v.Body)
			if err != nil {
				t.Fatal(err)
			}
			opts := toffeepay.VerifyOptions{Secrets: []string{v.Secret}, Tolerance: time.Duration(f.Tolerance) * time.Second, Now: time.Unix(v.Now, 0)}
			fields, err := toffeepay.VerifyLegacyCallbackWithOptions(form, opts)
			if expect(t, v, err) && !reflect.DeepEqual(fields, v.Fields) {
				t.Fatalf("fields %v, want %v", fields, v.Fields)
			}
		})
	}
}

func TestReturnTokenVectors(t *testing.T) {
	f := load(t, "return_tokens.json")
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			claims, err := toffeepay.VerifyReturnTokenAt(v.Token, f.JWKS, v.GameID, time.Unix(v.Now, 0))
			if expect(t, v, err) {
				want := toffeepay.ReturnClaims{
					SessionID: v.Claims["session_id"].(string), GameID: v.Claims["game_id"].(string),
					UserID: v.Claims["user_id"].(string), Status: v.Claims["status"].(string),
					IssuedAt: int64(v.Claims["iat"].(float64)), ExpiresAt: int64(v.Claims["exp"].(float64)),
				}
				if *claims != want {
					t.Fatalf("claims %+v, want %+v", *claims, want)
				}
			}
		})
	}
}

func TestRotationAcceptsEitherSecret(t *testing.T) {
	f := load(t, "webhooks.json")
	for _, v := range f.Vectors {
		if v.Name == "rotation: two signatures, verified with the new secret" {
			opts := toffeepay.VerifyOptions{Secrets: []string{"whsec_unrelated", v.Secret}, Now: time.Unix(v.Now, 0)}
			if _, err := toffeepay.ConstructEventWithOptions([]byte(v.Body), v.Header, opts); err != nil {
				t.Fatal(err)
			}
			if _, err := toffeepay.ConstructEvent([]byte(v.Body), v.Header, v.Secret); err == nil {
				t.Fatal("a 2026 signature verified at the current time")
			}
			return
		}
	}
	t.Fatal("no rotation vector")
}
