package twofa

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	for _, tt := range []struct {
		attempts int
		want     time.Duration
	}{
		{0, 30 * time.Second},
		{1, 30 * time.Second},
		{2, time.Minute},
		{3, 2 * time.Minute},
		{7, 32 * time.Minute},
		{8, time.Hour},
		{9, time.Hour},
		{1000, time.Hour},
	} {
		if got := retryDelay(tt.attempts); got != tt.want {
			t.Errorf("retryDelay(%d) = %v, want %v", tt.attempts, got, tt.want)
		}
	}
}

func TestScrub(t *testing.T) {
	body := MessageBody{To: "alice@example.com", Code: "48151623"}
	hook := MessageBody{To: "https://app.example.com/hook?token=s3cret"}
	for _, tt := range []struct {
		name string
		err  error
		body MessageBody
		want string
	}{
		{"Address", errors.New("550 5.1.1 <alice@example.com>: no such user"), body, "550 5.1.1 <[recipient]>: no such user"},
		{"Code", errors.New("rejected content 48151623"), body, "rejected content [code]"},
		{"URL", errors.New(`Post "https://app.example.com/hook?token=s3cret": dial tcp: connection refused`), hook,
			`Post "[recipient]": dial tcp: connection refused`},
		{"OneLine", errors.New("421 busy\r\n421 try later\x00\u200b"), body, "421 busy  421 try later"},
		{"InvalidUTF8", errors.New("bad \xff byte"), body, "bad ? byte"},
		{"NoBody", errors.New("timeout"), MessageBody{}, "timeout"},
		{"Permanent", Permanent(errors.New("535 bad credentials")), body, "535 bad credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := scrub(tt.err, tt.body); got != tt.want {
				t.Errorf("scrub(%q) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	long := scrub(errors.New(strings.Repeat("ab€", 200)), body)
	if len(long) > maxLastError+len("…") || !strings.HasSuffix(long, "…") || !strings.HasPrefix(strings.Repeat("ab€", 200), strings.TrimSuffix(long, "…")) {
		t.Errorf("scrub(a long error) = %d bytes, want its start cut at a character boundary to at most %d bytes and …", len(long), maxLastError)
	}
}
