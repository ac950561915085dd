package client

import (
	"net/url"
	"strings"
	"time"

	"github.com/twofa/twofa/prompt"
)

// PromptURL returns the URL of twofa's hosted verification prompt for one
// user, with a request signed by the tenant's prompt key. Keep nonce (from
// prompt.NewNonce) in the user's session for CheckPromptResult.
func PromptURL(twofaURL string, key []byte, tenant, userID, returnURL, nonce string, ttl time.Duration) (string, error) {
	tok, err := prompt.SignRequest(key, prompt.Request{
		Tenant: tenant, User: userID, ReturnURL: returnURL, Nonce: nonce,
		ExpiresAt: time.Now().Add(ttl).Unix(),
	})
	if err != nil {
		return "", err
	}
	q := url.Values{"tenant": {tenant}, "request": {tok}}
	return strings.TrimRight(twofaURL, "/") + "/prompt?" + q.Encode(), nil
}

// CheckPromptResult checks the result twofa sent back in the return URL's
// twofa_result parameter: its signature, expiry, tenant and nonce. On
// success the returned result's User passed the second factor. The caller
// must forget the nonce whatever the outcome, which makes a result
// single-use.
func CheckPromptResult(key []byte, tenant, nonce, token string) (*prompt.Result, error) {
	return prompt.ParseResult(key, token, tenant, nonce, time.Now())
}
