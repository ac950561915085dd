package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"strings"

	"github.com/twofa/twofa"
)

var runTenant = subcommands("tenant", "A tenant's settings for the hosted verification prompt.", []command{
	{"prompt-key", "make a new prompt key (printed once) that signs prompt requests and results", runTenantPromptKey},
	{"return-urls", "register the URLs the prompt may send users back to", runTenantReturnURLs},
})

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
