package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/examples/webapp"
	"github.com/twofa/twofa/web"
)

// demoTenant is the tenant the demo sets up.
const demoTenant = "demo"

// runDemo starts twofa and a small site that uses it (examples/webapp),
// set up to work together: a newcomer's first look, in one command.
func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "twofa demo [flags]")
	var addr, demoAddr, data string
	var trusted []netip.Prefix
	stringVar(fs, &addr, "addr", "127.0.0.1:8080", "`address` twofa listens on", checkAddr)
	stringVar(fs, &demoAddr, "demo-addr", "127.0.0.1:8081", "`address` the demo site listens on", checkAddr)
	fs.StringVar(&data, "data", "", "`dir`ectory of the database and its development key (default: a temporary one, deleted on exit)")
	fs.Var(&prefixesValue{&trusted}, "trusted-proxies", "`CIDR`s of reverse proxies in front of twofa, comma-separated, as for twofa serve (default: none)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("twofa demo takes no arguments")
	}
	if data == "" {
		dir, err := os.MkdirTemp("", "twofa-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		data = dir
	}
	// A catch-all SMTP server prints every email the demo sends, codes
	// included, so a newcomer sees them without a mail server.
	mailer, stopMail, err := startDemoMail(e.stdout)
	if err != nil {
		return err
	}
	defer stopMail()
	c := config{data: data, logLevel: "warn", policy: twofa.DefaultPolicy()}
	svc, st, log, err := c.start(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	outboxCtx, stopOutbox := context.WithCancel(ctx)
	waitOutbox := startOutbox(outboxCtx, svc, log, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: mailer}, nil, 0)
	defer func() { stopOutbox(); waitOutbox() }()

	twofaLn, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer twofaLn.Close()
	siteLn, err := net.Listen("tcp", demoAddr)
	if err != nil {
		return err
	}
	defer siteLn.Close()
	twofaURL, siteURL := "http://"+twofaLn.Addr().String(), "http://"+siteLn.Addr().String()

	// What an operator does for a new application: keys, the prompt's
	// key and the application's return URL.
	appKey, _, err := svc.CreateAPIKey(ctx, demoTenant, "demo site", twofa.ScopeApp)
	if err != nil {
		return err
	}
	adminKey, _, err := svc.CreateAPIKey(ctx, demoTenant, "demo console", twofa.ScopeAdmin)
	if err != nil {
		return err
	}
	promptKey, err := svc.NewPromptKey(ctx, demoTenant)
	if err != nil {
		return err
	}
	if err := svc.SetReturnURLs(ctx, demoTenant, []string{siteURL + "/2fa"}); err != nil {
		return err
	}
	password := demoPassword()
	hash, err := webapp.HashPassword(password)
	if err != nil {
		return err
	}
	site, err := webapp.NewHandler(webapp.Config{
		TwofaURL: twofaURL, APIKey: appKey, Tenant: demoTenant, PromptKey: promptKey, BaseURL: siteURL,
		Accounts: map[string]string{"demo": hash}, Logger: log,
	})
	if err != nil {
		return err
	}

	servers := []*http.Server{
		demoServer(web.NewHandler(svc, web.Options{Logger: log, Ready: st.Ping, PublicURL: twofaURL, TrustedProxies: trusted})),
		demoServer(site),
	}
	errc := make(chan error, 2)
	for i, ln := range []net.Listener{twofaLn, siteLn} {
		go func() { errc <- servers[i].Serve(ln) }()
	}
	fmt.Fprintf(e.stdout, "twofa listening on %s\n", twofaURL)
	fmt.Fprintf(e.stdout, "demo site on %s\n", siteURL)
	fmt.Fprintf(e.stdout, "sign in to the demo site as demo with password %s\n", password)
	fmt.Fprintf(e.stdout, "admin console on %s/admin/login with key %s\n", twofaURL, adminKey)
	fmt.Fprintln(e.stdout, "press Ctrl-C to stop")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(shutdownCtx)
	}
	return nil
}

func demoServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
}

// demoPassword is a fresh password, easy to copy: 80 random bits.
func demoPassword() string {
	t := strings.ToLower(rand.Text()[:16])
	return t[:4] + "-" + t[4:8] + "-" + t[8:12] + "-" + t[12:]
}
