package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

var runTenant = subcommands("tenant", "A tenant's settings for the hosted verification prompt, and its webhook.", []command{
	{"prompt-key", "make a new prompt key (printed once) that signs prompt requests and results", runTenantPromptKey},
	{"return-urls", "register the URLs the prompt may send users back to", runTenantReturnURLs},
	{"webhook", "send the tenant's events to a URL, signed (Standard Webhooks)", runTenantWebhook},
	{"restricted", "let a restricted factor (email) be a user's only factor, or not (the default)", runTenantRestricted},
})

func runTenantRestricted(ctx context.Context, e *env, args []string) error {
	var tenant *string
	var allow bool
	return adminCmd(ctx, e, args, "twofa tenant restricted [--tenant T] --allow true|false", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the tenant")
		fs.Var(boolArg{&boolValue{&allow}}, "allow", "true: email may be a user's only factor; false: it needs an authenticator app or backup codes beside it (NIST SP 800-63B rev 4)")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "allow" })
		if !set || fs.NArg() > 0 {
			return usageError("say --allow true or --allow false, and nothing else")
		}
		if err := svc.SetRestrictedOnly(ctx, *tenant, allow); err != nil {
			return err
		}
		if allow {
			fmt.Fprintf(e.stdout, "tenant %s: email may be a user's only factor\n", *tenant)
		} else {
			fmt.Fprintf(e.stdout, "tenant %s: email needs an authenticator app or backup codes beside it\n", *tenant)
		}
		return nil
	})
}

var runTenantWebhook = subcommands("tenant webhook", "A tenant's webhook: every audit event of the tenant, POSTed to a URL and signed as Standard Webhooks specify.", []command{
	{"set", "set the webhook's URL and event types; prints its new signing secret, once", runTenantWebhookSet},
	{"show", "show the webhook (never its secret)", runTenantWebhookShow},
	{"remove", "remove the webhook", runTenantWebhookRemove},
})

func runTenantWebhookSet(ctx context.Context, e *env, args []string) error {
	var tenant, hookURL, events *string
	return adminCmd(ctx, e, args, "twofa tenant webhook set [--tenant T] --url URL [--events TYPE,TYPE...]", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the tenant")
		hookURL = fs.String("url", "", "where to POST the events: https (http only for localhost)")
		events = fs.String("events", "", "send only these event types, comma-separated (default: every event)")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if *hookURL == "" || fs.NArg() > 0 {
			return usageError("give the webhook's URL with --url, and nothing else")
		}
		var types []twofa.EventType
		for t := range strings.SplitSeq(*events, ",") {
			if t = strings.TrimSpace(t); t != "" {
				types = append(types, twofa.EventType(t))
			}
		}
		secret, err := svc.SetWebhook(ctx, *tenant, *hookURL, types)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "tenant %s: webhook to %s, %s; its signing secret replaces any other and is shown once:\n", *tenant, *hookURL, eventsText(types))
		fmt.Fprintln(e.stdout, secret)
		return nil
	})
}

func runTenantWebhookShow(ctx context.Context, e *env, args []string) error {
	var tenant *string
	return adminCmd(ctx, e, args, "twofa tenant webhook show [--tenant T]", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the tenant")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		w, err := svc.Webhook(ctx, *tenant)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "tenant %s: webhook to %s, %s (updated %s)\n", *tenant, w.URL, eventsText(w.Events), w.UpdatedAt.UTC().Format(time.RFC3339))
		return nil
	})
}

func runTenantWebhookRemove(ctx context.Context, e *env, args []string) error {
	var tenant *string
	return adminCmd(ctx, e, args, "twofa tenant webhook remove [--tenant T]", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the tenant")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if err := svc.RemoveWebhook(ctx, *tenant); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "tenant %s: webhook removed\n", *tenant)
		return nil
	})
}

func eventsText(types []twofa.EventType) string {
	if len(types) == 0 {
		return "every event"
	}
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return "events " + strings.Join(names, ",")
}

func runTenantPromptKey(ctx context.Context, e *env, args []string) error {
	var tenant *string
	return adminCmd(ctx, e, args, "twofa tenant prompt-key [--tenant T]", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the tenant")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		key, err := svc.NewPromptKey(ctx, *tenant)
		if err != nil {
			return err
		}
		defer clear(key)
		fmt.Fprintf(e.stderr, "new prompt key for tenant %s (base64); it replaces any other and is shown once:\n", *tenant)
		fmt.Fprintln(e.stdout, base64.StdEncoding.EncodeToString(key))
		return nil
	})
}

func runTenantReturnURLs(ctx context.Context, e *env, args []string) error {
	var tenant *string
	return adminCmd(ctx, e, args, "twofa tenant return-urls [--tenant T] URL...", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the tenant")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if fs.NArg() == 0 {
			return usageError("give at least one return URL")
		}
		if err := svc.SetReturnURLs(ctx, *tenant, fs.Args()); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "tenant %s: return URLs %s\n", *tenant, strings.Join(fs.Args(), " "))
		return nil
	})
}

// boolArg is a boolean flag that takes its value as the next argument
// (--allow false), as a setting that must be said outright does.
type boolArg struct{ v *boolValue }

func (b boolArg) String() string {
	if b.v == nil {
		return "false"
	}
	return b.v.String()
}
func (b boolArg) Set(s string) error { return b.v.Set(s) }
