package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/twofa/twofa"
)

var runOutbox = subcommands("outbox", "The outbox: the messages twofa sends (email codes and notices, webhooks), queued, sent or failed.", []command{
	{"list", "list messages, newest first (never what they say or where they go)", runOutboxList},
	{"retry", "send a failed message again, or a waiting one now", runOutboxRetry},
})

func runOutboxList(ctx context.Context, e *env, args []string) error {
	var (
		failed         *bool
		tenant, before *string
		limit          *int
	)
	return adminCmd(ctx, e, args, "twofa outbox list [--failed] [--tenant T] [--limit N] [--before ID]", func(fs *flag.FlagSet) {
		failed = fs.Bool("failed", false, "only messages that failed for good (retry them with twofa outbox retry)")
		tenant = fs.String("tenant", "", "only this tenant's messages (default: every tenant's)")
		limit = fs.Int("limit", 50, "at most this many messages, 1 to 1000")
		before = fs.String("before", "", "only messages added before this `ID`: the next page")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if fs.NArg() != 0 {
			return usageError("list takes no arguments")
		}
		if *limit < 1 || *limit > 1000 {
			return usageError("--limit must be 1 to 1000")
		}
		f := twofa.MessageFilter{Tenant: *tenant, Before: *before, Limit: *limit}
		if *failed {
			f.Status = twofa.MessageFailed
		}
		ms, err := svc.OutboxMessages(ctx, f)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTENANT\tUSER\tCHANNEL\tKIND\tSTATUS\tTRIES\tCREATED\tNEXT TRY\tDONE\tLAST ERROR")
		for _, m := range ms {
			next := "-"
			if m.Status == twofa.MessageQueued {
				next = when(m.NextAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.Tenant, orDash(m.User), m.Channel, m.Kind,
				m.Status, m.Attempts, when(m.CreatedAt), next, when(m.SentAt), orDash(m.LastError))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(ms) == *limit {
			fmt.Fprintf(e.stderr, "more may follow: add --before %s\n", ms[len(ms)-1].ID)
		}
		return nil
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runOutboxRetry(ctx context.Context, e *env, args []string) error {
	return adminCmd(ctx, e, args, "twofa outbox retry MESSAGE_ID", nil, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if fs.NArg() != 1 {
			return usageError("retry takes one message ID")
		}
		if err := svc.RetryMessage(ctx, "", fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "queued %s: a running twofa serve sends it within a second\n", fs.Arg(0))
		return nil
	})
}
