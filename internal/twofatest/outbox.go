package twofatest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/seal"
)

// Mail is an outbox message with its payload opened.
type Mail struct {
	*twofa.Message
	// Body is the opened payload; zero for a message that was sent,
	// whose payload is wiped.
	Body twofa.MessageBody
}

// Outbox returns the tenant's outbox messages, oldest first, with their
// payloads opened with keys, the keyring of the Service that queued them.
func Outbox(tb testing.TB, st twofa.OutboxStore, keys *seal.Keyring, tenant string) []Mail {
	tb.Helper()
	ms, err := st.Messages(context.Background(), twofa.MessageFilter{Tenant: tenant, Limit: 1000})
	if err != nil {
		tb.Fatalf("twofatest: listing the outbox: %v", err)
	}
	var out []Mail
	for _, m := range slices.Backward(ms) {
		mail := Mail{Message: m}
		if len(m.Payload) > 0 {
			b, err := keys.Open(m.Payload, twofa.MessageAD(m))
			if err != nil {
				tb.Fatalf("twofatest: opening message %s: %v", m.ID, err)
			}
			if err := json.Unmarshal(b, &mail.Body); err != nil {
				tb.Fatalf("twofatest: message %s: %v", m.ID, err)
			}
		}
		out = append(out, mail)
	}
	return out
}

// LastCode returns the code of the newest code message queued for the
// user to address, as the user would read it in their mail. The test
// fails if none was.
func LastCode(tb testing.TB, st twofa.OutboxStore, keys *seal.Keyring, ref twofa.UserRef, address string) string {
	tb.Helper()
	var code string
	for _, m := range Outbox(tb, st, keys, ref.Tenant) {
		if m.Kind == twofa.KindCode && m.User == ref.User && m.Body.To == address {
			code = m.Body.Code
		}
	}
	if code == "" {
		tb.Fatalf("twofatest: no code was sent to %s", address)
	}
	return code
}

// Codes counts the code messages queued for the user to address.
func Codes(tb testing.TB, st twofa.OutboxStore, keys *seal.Keyring, ref twofa.UserRef, address string) int {
	tb.Helper()
	n := 0
	for _, m := range Outbox(tb, st, keys, ref.Tenant) {
		if m.Kind == twofa.KindCode && m.User == ref.User && m.Body.To == address {
			n++
		}
	}
	return n
}
