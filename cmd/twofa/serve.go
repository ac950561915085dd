package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/web"
	"github.com/twofa/twofa/webhook"
)

func encodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "twofa serve [flags]")
	var c config
	c.register(fs, e)
	c.policyFlags(fs, e)
	var addr, certFile, keyFile, publicURL, debugAddr string
	var trusted []netip.Prefix
	envFlag(fs, e, &addr, "addr", "127.0.0.1:8080", "`address` to listen on", checkAddr)
	envFlag(fs, e, &publicURL, "public-url", "", "the `URL` end users reach twofa at, for links to the hosted pages (default: from each request's Host)", optional(checkPublicURL))
	envFlag(fs, e, &certFile, "tls-cert", "", "TLS certificate `file` (PEM); with --tls-key, serve HTTPS")
	envFlag(fs, e, &keyFile, "tls-key", "", "TLS private key `file` (PEM)")
	envFlag(fs, e, &debugAddr, "debug-addr", "", "`address` for Go's profiler (/debug/pprof/), apart from the API; keep it on loopback (default: off)", optional(checkAddr))
	envVar(fs, e, &prefixesValue{&trusted}, "trusted-proxies", "`CIDR`s of reverse proxies whose X-Forwarded-For or Forwarded names the client of the hosted pages, comma-separated (default: none)")
	var mc mailConfig
	mc.register(fs, e)
	var outboxLease time.Duration
	envVar(fs, e, durVar(&outboxLease, defaultOutboxLease, 2*time.Second, time.Hour), "outbox-lease",
		"how long a message this replica's outbox worker takes is its own (a `duration`): after a crash, the messages it was sending go out again once this has passed; a send times out at half of it, at most 30s")
	var webhookPrivate bool
	envVar(fs, e, &boolValue{&webhookPrivate}, "webhook-allow-private", "let tenants' webhooks reach loopback, private and link-local addresses: only when every tenant administrator may reach the network twofa runs in (default: false)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if err := c.checkPolicy(fs); err != nil {
		return err
	}
	if (certFile == "") != (keyFile == "") {
		return usageError(settingName(fs, "tls-cert") + " and " + settingName(fs, "tls-key") + " go together: want both or neither")
	}
	var tlsConfig *tls.Config
	if certFile != "" {
		// Loaded now, so that a bad file stops the start rather than the
		// first connection.
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return usageError(fmt.Sprintf("%s and %s: want a PEM certificate and its private key: %v", settingName(fs, "tls-cert"), settingName(fs, "tls-key"), err))
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	mailer, err := mc.sender(e) // before the database, so a bad setting changes nothing
	if err != nil {
		return err
	}
	c.channels = []twofa.Channel{twofa.ChannelWebhook}
	if mailer != nil {
		c.channels = append(c.channels, twofa.ChannelEmail)
	}
	svc, st, log, err := c.start(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	warnTrustAll(log, trusted)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}

	// The outbox's senders, one line each: a channel without one keeps its
	// messages queued.
	senders := map[twofa.Channel]twofa.Sender{
		twofa.ChannelWebhook: webhook.NewSender(svc, webhook.Options{AllowPrivate: webhookPrivate}),
	}
	if mailer != nil {
		senders[twofa.ChannelEmail] = mailer
	} else {
		log.Info("no SMTP server set (--smtp-url): email factors and notices are unavailable")
	}
	sends := web.NewSendCounter()
	outboxCtx, stopOutbox := context.WithCancel(ctx)
	waitOutbox := startOutbox(outboxCtx, svc, log, senders, sends, outboxLease)
	defer func() { stopOutbox(); waitOutbox() }()

	srv := &http.Server{
		Handler:           web.NewHandler(svc, web.Options{Logger: log, Ready: st.Ping, PublicURL: publicURL, TrustedProxies: trusted, Sends: sends}),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	log.Info("serving", "url", fmt.Sprintf("%s://%s", scheme, ln.Addr()), "version", version)
	fmt.Fprintf(e.stdout, "twofa listening on %s://%s\n", scheme, ln.Addr())

	// Expired enrollments are swept now and then; any replica may do it.
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n, err := svc.SweepExpired(ctx); err != nil {
					log.Error("sweeping expired enrollments", "err", err)
				} else if n > 0 {
					log.Info("swept expired enrollments", "count", n)
				}
			}
		}
	}()

	if debugAddr != "" {
		dln, err := net.Listen("tcp", debugAddr)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		dsrv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 5 * time.Second}
		defer dsrv.Close()
		log.Warn("profiler listening; it must not be reachable from outside", "addr", dln.Addr().String())
		go dsrv.Serve(dln)
	}

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// warnTrustAll warns of a trusted proxy range that holds every address:
// then any client may name its own address, and the per-IP limits hold
// no one.
func warnTrustAll(log *slog.Logger, trusted []netip.Prefix) {
	for _, p := range trusted {
		if p.Bits() == 0 {
			log.Warn("--trusted-proxies trusts every address: any client can choose the address the per-IP limits and the audit log see", "prefix", p.String())
		}
	}
}

// defaultOutboxLease is the outbox worker's lease unless --outbox-lease
// says otherwise.
const defaultOutboxLease = 2 * time.Minute

// startOutbox runs the outbox's worker with the senders until ctx ends,
// counting its tries in sends (if not nil), under leases of lease (0:
// the default), and returns a function that waits for it to stop: sends
// under way when ctx ends are interrupted and queued again, for the next
// worker.
func startOutbox(ctx context.Context, svc *twofa.Service, log *slog.Logger, senders map[twofa.Channel]twofa.Sender, sends *web.SendCounter, lease time.Duration) (wait func()) {
	var channels []string
	for c, sn := range senders {
		if sn != nil {
			channels = append(channels, string(c))
		}
	}
	slices.Sort(channels)
	if len(channels) == 0 {
		log.Info("outbox: no senders configured; messages stay queued")
	} else {
		log.Info("outbox: sending", "channels", channels)
	}
	if lease == 0 {
		lease = defaultOutboxLease
	}
	// A send must end before its lease does, or another worker could send
	// the message while it is still under way.
	opts := twofa.DeliverOptions{Lease: lease, SendTimeout: min(30*time.Second, lease/2)}
	if sends != nil {
		opts.OnSend = sends.Observe
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.DeliverOutbox(ctx, senders, opts); err != nil {
			log.Error("outbox: the worker stopped", "err", err)
		}
	}()
	return func() { <-done }
}

// debugHandler serves Go's profiler, on its own listener so that it is
// never reachable through the API's address.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
