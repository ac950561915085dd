package smtp

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtpd "github.com/emersion/go-smtp"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/mailpit"
)

// BenchmarkSender_Send measures Send alone, without the outbox: render a
// notice (text and HTML from the templates), connect, EHLO, MAIL, RCPT,
// DATA, QUIT, one connection a message, at 1, 4 and 16 sends at once, to
// an SMTP server in this process that drops what it gets (go-smtp: its
// cost is in ns/op and allocs too) and to Mailpit (which stores each
// message; its cost is in ns/op only). msgs/s is the rate.
func BenchmarkSender_Send(b *testing.B) {
	for _, target := range []struct {
		name string
		addr func(b *testing.B) string
	}{
		{"GoSMTP", startDiscardServer},
		{"Mailpit", func(b *testing.B) string { return mailpit.Start(b, mailpit.Options{}).SMTPAddr() }},
	} {
		b.Run(target.name, func(b *testing.B) {
			s, err := New(Config{URL: "smtp://" + target.addr(b) + "?tls=none", From: testFrom, Timeout: 10 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			for _, conc := range []int{1, 4, 16} {
				b.Run(fmt.Sprintf("Concurrency%d", conc), func(b *testing.B) {
					b.ReportAllocs()
					var next atomic.Int64
					var wg sync.WaitGroup
					for w := 0; w < conc; w++ {
						wg.Go(func() {
							for {
								i := next.Add(1)
								if i > int64(b.N) {
									return
								}
								m := sampleNotice(twofa.EventBackupCodesIssued, twofa.FactorBackupCode)
								m.ID, m.Body.To = fmt.Sprintf("msg_bench%d", i), fmt.Sprintf("user%d@example.test", i)
								if err := s.Send(context.Background(), m); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				})
			}
		})
	}
}

// startDiscardServer starts an SMTP server that accepts any message and
// drops it, and returns its address.
func startDiscardServer(b *testing.B) string {
	srv := gosmtpd.NewServer(gosmtpd.BackendFunc(func(*gosmtpd.Conn) (gosmtpd.Session, error) {
		return discardSession{}, nil
	}))
	srv.Domain = "bench.example"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type discardSession struct{}

func (discardSession) Mail(string, *gosmtpd.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *gosmtpd.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error                  { _, err := io.Copy(io.Discard, r); return err }
func (discardSession) Reset()                                  {}
func (discardSession) Logout() error                           { return nil }
