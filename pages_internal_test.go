package twofa

import "testing"

func TestReturnURLMatches(t *testing.T) {
	const reg = "https://app.example.com/2fa"
	tests := []struct {
		allowed, got string
		want         bool
	}{
		{reg, "https://app.example.com/2fa", true},
		{reg, "https://app.example.com/2fa/", true},
		{reg, "https://app.example.com/2fa/done?step=2", true},
		{reg, "https://app.example.com/2fa/done.html", true},
		{reg, "https://app.example.com/2fa/..done", true}, // not a dot segment
		{reg, "https://app.example.com/2fa/%41", true},    // an encoded letter is the letter
		{reg + "/", "https://app.example.com/2fa", true},
		{reg + "/", "https://app.example.com/2fa/x", true},

		// The path boundary.
		{reg, "https://app.example.com/2fa-evil", false},
		{reg + "/", "https://app.example.com/2fa-evil", false},
		{reg, "https://app.example.com/2faevil", false},
		{reg, "https://app.example.com/", false},
		{reg, "https://app.example.com", false},

		// Dot segments, plain, encoded or with parameters, resolve
		// elsewhere.
		{reg, "https://app.example.com/2fa/../logout?next=//evil.com", false},
		{reg, "https://app.example.com/2fa/..", false},
		{reg, "https://app.example.com/2fa/./done", false},
		{reg, "https://app.example.com/2fa/.", false},
		{reg, "https://app.example.com/2fa/%2e%2e/logout", false},
		{reg, "https://app.example.com/2fa/%2E%2E/logout", false},
		{reg, "https://app.example.com/2fa/.%2e/logout", false},
		{reg, "https://app.example.com/2fa/%2e/done", false},
		{reg, "https://app.example.com/2fa/..;/logout", false},
		{reg, "https://app.example.com/2fa/..%3b/logout", false},
		// Encoded slashes and backslashes, which servers split or not.
		{reg, "https://app.example.com/2fa%2f..%2flogout", false},
		{reg, "https://app.example.com/2fa/%2Flogout", false},
		{reg, "https://app.example.com/2fa/%5c..%5clogout", false},
		{reg, "https://app.example.com/2fa/%5Cdone", false},
		{reg, `https://app.example.com/2fa/\..\logout`, false},
		{reg, `https://app.example.com/2fa/a\b`, false},

		// Another origin or credentials.
		{reg, "http://app.example.com/2fa/done", false},
		{reg, "https://app.example.com.evil/2fa", false},
		{reg, "https://app.example.com:8443/2fa", false},
		{reg, "https://evil@app.example.com/2fa", false},
		{reg, `https://app.example.com\@evil.com/2fa`, false},
		{reg, "//app.example.com/2fa", false},
		{reg, "/2fa", false},

		// A whole origin allows any path that resolves nowhere else.
		{"https://app.example.com", "https://app.example.com/anything/here", true},
		{"https://app.example.com/", "https://app.example.com/", true},
		{"https://app.example.com", "https://app.example.com/a/../b", false},
		{"https://app.example.com", "https://app.example.com/a%2fb", false},

		// A registered URL that is not clean (stored by an older version,
		// or written to the database) allows nothing.
		{"https://app.example.com/a/../2fa", "https://app.example.com/2fa/x", false},
		{"https://app.example.com/a/../2fa", "https://app.example.com/a/../2fa/x", false},
		{"https://app.example.com/2fa%2f..", "https://app.example.com/2fa%2f../x", false},
	}
	for _, tt := range tests {
		if got := returnURLMatches(tt.allowed, tt.got); got != tt.want {
			t.Errorf("returnURLMatches(%q, %q) = %t, want %t", tt.allowed, tt.got, got, tt.want)
		}
	}
}

func TestCheckReturnURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://app.example.com/2fa", true},
		{"https://app.example.com/2fa/", true},
		{"https://app.example.com", true},
		{"https://app.example.com/2fa/v1.2/done", true},
		{"http://localhost:8080/2fa", true},
		{"http://app.example.com/2fa", false},
		{"https://app.example.com/2fa#x", false},
		{"https://user@app.example.com/2fa", false},
		{"/2fa", false},
		{"https://app.example.com/2fa/../logout", false},
		{"https://app.example.com/2fa/..", false},
		{"https://app.example.com/./2fa", false},
		{"https://app.example.com/2fa/%2e%2e", false},
		{"https://app.example.com/2fa/%2E", false},
		{"https://app.example.com/2fa%2Fx", false},
		{"https://app.example.com/2fa%5cx", false},
		{`https://app.example.com/2fa\x`, false},
		{"https://app.example.com/2fa/..;x/y", false},
	}
	for _, tt := range tests {
		err := checkReturnURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("checkReturnURL(%q) = %v, want ok %t", tt.url, err, tt.ok)
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("checkReturnURL(%q) = %v, want an EINVALID error", tt.url, err)
		}
	}
}

func TestAccountName(t *testing.T) {
	tests := []struct{ user, want string }{
		{"alice", "alice"},
		{"alice@example.com", "alice@example.com"},
		{"urn:acme:42", "urn.acme.42"},
		{":", "."},
		{" bob ", "bob"},
		{" : ", "."},
		{"   ", "user"},
		{"Jürgen Groß", "Jürgen Groß"},
	}
	for _, tt := range tests {
		if got := accountName(tt.user); got != tt.want {
			t.Errorf("accountName(%q) = %q, want %q", tt.user, got, tt.want)
		}
	}
}
