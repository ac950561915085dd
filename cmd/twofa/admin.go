package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/seal"
)

// adminCmd is the shape of every command that opens the database: it
// parses the shared flags and its own, opens the Service, and runs.
func adminCmd(ctx context.Context, e *env, args []string, synopsis string,
	flags func(fs *flag.FlagSet), body func(ctx context.Context, svc *twofa.Service, st store, fs *flag.FlagSet) error) error {
	fs := newFlags(e, strings.Fields(synopsis)[1], synopsis)
	var c config
	c.register(fs, e)
	if flags != nil {
		flags(fs)
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	svc, st, _, err := c.start(ctx, e)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx = twofa.WithMeta(ctx, twofa.Meta{Actor: "cli:" + currentUser(e)})
	return body(ctx, svc, st, fs)
}

func currentUser(e *env) string {
	if u := e.getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// subcommands dispatches to a group's commands.
func subcommands(name, about string, cmds []command) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			usage(e.stderr, "twofa "+name, about, cmds)
			if len(args) == 0 {
				return usageError("no " + name + " command given")
			}
			return nil
		}
		for _, c := range cmds {
			if c.name == args[0] {
				return c.run(ctx, e, args[1:])
			}
		}
		return usageError(fmt.Sprintf("unknown %s command %q (see twofa %s help)", name, args[0], name))
	}
}

var runAPIKey = subcommands("apikey", "API keys: each belongs to a tenant, with scope app or admin.", []command{
	{"create", "make a key; it is printed once, alone on the last line", runAPIKeyCreate},
	{"list", "list keys (never their secrets)", runAPIKeyList},
	{"revoke", "revoke a key by ID", runAPIKeyRevoke},
})

func runAPIKeyCreate(ctx context.Context, e *env, args []string) error {
	var name, tenant *string
	var admin *bool
	return adminCmd(ctx, e, args, "twofa apikey create --name NAME [--tenant T] [--admin]", func(fs *flag.FlagSet) {
		name = fs.String("name", "", "what the key is for, such as the application's name")
		tenant = fs.String("tenant", "default", "the tenant the key belongs to")
		admin = boolFlag(fs, "admin", false, "admin scope: may also unlock users and read the audit log")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		scope := twofa.ScopeApp
		if *admin {
			scope = twofa.ScopeAdmin
		}
		secret, k, err := svc.CreateAPIKey(ctx, *tenant, *name, scope)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "created API key %s (%s, tenant %s, scope %s); it is shown once:\n", k.ID, k.Name, k.Tenant, k.Scope)
		fmt.Fprintln(e.stdout, secret)
		return nil
	})
}

func runAPIKeyList(ctx context.Context, e *env, args []string) error {
	var tenant *string
	return adminCmd(ctx, e, args, "twofa apikey list [--tenant T]", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "", "only this tenant's keys")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		keys, err := svc.APIKeys(ctx, *tenant)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTENANT\tNAME\tSCOPE\tCREATED\tREVOKED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Tenant, k.Name, k.Scope, when(k.CreatedAt), when(k.RevokedAt))
		}
		return tw.Flush()
	})
}

func runAPIKeyRevoke(ctx context.Context, e *env, args []string) error {
	return adminCmd(ctx, e, args, "twofa apikey revoke KEY_ID", nil, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if fs.NArg() != 1 {
			return usageError("revoke takes one key ID")
		}
		if err := svc.RevokeAPIKey(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "revoked", fs.Arg(0))
		return nil
	})
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

var runUsers = subcommands("users", "Users' second factors.", []command{
	{"show", "show a user's devices, backup codes and lock", userCmd("show")},
	{"unlock", "clear a user's failures and lock", userCmd("unlock")},
	{"disable", "turn 2FA off for a user: delete every device and backup code", userCmd("disable")},
})

func userCmd(action string) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		var tenant *string
		return adminCmd(ctx, e, args, "twofa users "+action+" [--tenant T] USER", func(fs *flag.FlagSet) {
			tenant = fs.String("tenant", "default", "the user's tenant")
		}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
			if fs.NArg() != 1 {
				return usageError(action + " takes one user ID")
			}
			ref := twofa.UserRef{Tenant: *tenant, User: fs.Arg(0)}
			switch action {
			case "unlock":
				if err := svc.Unlock(ctx, ref); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, "unlocked", ref)
				return nil
			case "disable":
				if err := svc.Disable(ctx, ref); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, "2FA disabled for", ref)
				return nil
			}
			u, err := svc.UserStatus(ctx, ref)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "user %s: enrolled %v, %d backup codes left, %d consecutive failures, locked until %s\n",
				ref, u.Enrolled(), u.BackupCodes, u.Failures, when(u.LockedUntil))
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DEVICE\tNAME\tSTATUS\tPARAMS\tCREATED\tLAST USED\tDRIFT")
			for _, d := range u.Devices {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%d/%ds\t%s\t%s\t%+d\n", d.ID, d.Name, d.Status, d.Params.Algorithm, d.Params.Digits, d.Params.Period, when(d.CreatedAt), when(d.LastUsedAt), d.Drift)
			}
			return tw.Flush()
		})
	}
}

// runEnroll enrolls a user from the terminal: a QR code to scan, then a
// code to type. Enrollment with no application at all.
func runEnroll(ctx context.Context, e *env, args []string) error {
	var tenant, name *string
	return adminCmd(ctx, e, args, "twofa enroll [--tenant T] [--name DEVICE] USER", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the user's tenant")
		name = fs.String("name", "", "the device's name")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if fs.NArg() != 1 {
			return usageError("enroll takes one user ID")
		}
		ref := twofa.UserRef{Tenant: *tenant, User: fs.Arg(0)}
		en, err := svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{Name: *name})
		if err != nil {
			return err
		}
		qr, err := en.QR()
		if err != nil {
			return err
		}
		fmt.Fprint(e.stdout, qr.Terminal(2, false))
		fmt.Fprintf(e.stdout, "\nScan this with an authenticator app, or type the secret:\n  %s\n\n", groups(otp.EncodeSecret(en.Secret)))
		in := bufio.NewScanner(e.stdin)
		for tries := 0; tries < 3; tries++ {
			fmt.Fprint(e.stdout, "Code from the app: ")
			if !in.Scan() {
				return errors.New("no code given; the enrollment expires by itself")
			}
			res, err := svc.ConfirmEnrollment(ctx, ref, en.Device.ID, strings.TrimSpace(in.Text()))
			if err != nil && twofa.ErrorCode(err) != twofa.EINVALID {
				return err
			}
			if err != nil {
				fmt.Fprintln(e.stdout, twofa.ErrorMessage(err))
				continue
			}
			if !res.Valid {
				fmt.Fprint(e.stdout, "That code is not right")
				if res.ClockSkew != 0 {
					fmt.Fprintf(e.stdout, " (the phone's clock seems %s off)", res.ClockSkew)
				}
				fmt.Fprintln(e.stdout, ".")
				continue
			}
			fmt.Fprintf(e.stdout, "Enrolled device %s (%s).\n", res.Device.ID, res.Device.Name)
			if len(res.BackupCodes) > 0 {
				fmt.Fprintln(e.stdout, "\nBackup codes, each usable once; keep them somewhere safe. They are not shown again:")
				for _, c := range res.BackupCodes {
					fmt.Fprintln(e.stdout, "  "+c)
				}
			}
			return nil
		}
		return errors.New("three wrong codes; start again")
	})
}

// groups writes a secret in groups of four for typing.
func groups(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

var runKeys = subcommands("keys", "The master keyring that seals secrets.", []command{
	{"rotate", "re-seal every secret under the active key (resumable, safe while serving)", runKeysRotate},
	{"status", "count secrets under the active key and under old ones", runKeysStatus},
	{"generate", "print a new random master key (base64)", runKeysGenerate},
})

func runKeysRotate(ctx context.Context, e *env, args []string) error {
	return adminCmd(ctx, e, args, "twofa keys rotate", nil, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		start := time.Now()
		p, err := svc.RotateKeys(ctx, func(p twofa.RotationProgress) { progressBar(e.stderr, p.Done, p.Total, start) })
		fmt.Fprintln(e.stderr)
		if err != nil {
			return fmt.Errorf("after %d of %d: %w (run it again to resume)", p.Done, p.Total, err)
		}
		active, total, stale, err := svc.KeyStatus(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "re-sealed %d values in %s; %d of %d under key %d, %d under older keys\n", p.Done, time.Since(start).Round(time.Millisecond), total-stale, total, active, stale)
		return nil
	})
}

// progressBar draws a one-line bar on a terminal.
func progressBar(w io.Writer, done, total int, start time.Time) {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	fmt.Fprintf(w, "\r[%s%s] %d/%d %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, 100*frac, time.Since(start).Round(time.Second))
}

func runKeysStatus(ctx context.Context, e *env, args []string) error {
	return adminCmd(ctx, e, args, "twofa keys status", nil, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		active, total, stale, err := svc.KeyStatus(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "active key %d: %d sealed values, %d under older keys\n", active, total, stale)
		return nil
	})
}

func runKeysGenerate(_ context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] != "--help" {
		return usageError("generate takes no arguments")
	}
	key, err := seal.GenerateKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, encodeKey(key))
	return nil
}

var runAudit = subcommands("audit", "The hash-chained audit log.", []command{
	{"verify", "check every chain of the log from where the last check stopped (--full: from the beginning); exit 1 if an entry was altered or removed", runAuditVerify},
	{"tail", "print the latest events", runAuditTail},
})

func runAuditVerify(ctx context.Context, e *env, args []string) error {
	var heads string
	var full *bool
	return adminCmd(ctx, e, args, "twofa audit verify [--full] [--heads H]", func(fs *flag.FlagSet) {
		full = boolFlag(fs, "full", false, "walk every chain from its beginning, not from the stored checkpoints: finds changes made before the last check too")
		stringVar(fs, &heads, "heads", "", "`heads` printed by an earlier run (chain:seq:hash,...): fail if the log no longer reaches them", func(s string) error {
			_, err := twofa.ParseChainHeads(s)
			return err
		})
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		expect, err := twofa.ParseChainHeads(heads)
		if err != nil {
			return usageError("--heads: " + err.Error())
		}
		st, err := svc.VerifyAuditWith(ctx, twofa.AuditWalk{Full: *full, Heads: expect})
		if err != nil {
			return err
		}
		if !st.OK {
			fmt.Fprintf(e.stdout, "BROKEN at entry %d: %s (%d entries checked before it)\n", st.BadSeq, st.Problem, st.Checked)
			return exitError{code: 1}
		}
		from := "from the beginning"
		if !*full {
			from = "since the last check"
		}
		fmt.Fprintf(e.stdout, "ok: %d entries in %d chain%s, %d of them checked %s, head %x\n",
			st.Events, st.Chains, plural(st.Chains), st.Checked, from, st.Head)
		hs := make([]string, len(st.Heads))
		for i, h := range st.Heads {
			hs[i] = h.String()
		}
		// Record this line elsewhere; give it back with --heads later.
		fmt.Fprintf(e.stdout, "heads %s\n", strings.Join(hs, ","))
		return nil
	})
}

func runAuditTail(ctx context.Context, e *env, args []string) error {
	var tenant, user *string
	var n *int
	return adminCmd(ctx, e, args, "twofa audit tail [--tenant T] [--user U] [-n N]", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "", "only this tenant")
		user = fs.String("user", "", "only this user (with --tenant)")
		n = new(int)
		fs.Var(intVar(n, 20, 1, maxInt), "n", "how many of the latest events")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		// Walk forward to the end, keeping the last n.
		var last []*twofa.AuditEvent
		var after int64
		for {
			events, err := svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: *tenant, User: *user, After: after, Limit: 1000})
			if err != nil {
				return err
			}
			last = append(last, events...)
			if len(last) > *n {
				last = last[len(last)-*n:]
			}
			if len(events) < 1000 {
				break
			}
			after = events[len(events)-1].Seq
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tTENANT/USER\tDEVICE\tREASON\tACTOR\tIP\tDETAIL")
		for _, ev := range last {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, ev.Time.UTC().Format(time.RFC3339), ev.Type, ev.Tenant, ev.User, ev.Device, ev.Reason, ev.Actor, ev.IP, ev.Detail)
		}
		return tw.Flush()
	})
}

func runMigrate(ctx context.Context, e *env, args []string) error {
	return adminCmd(ctx, e, args, "twofa migrate", nil, func(ctx context.Context, _ *twofa.Service, st store, fs *flag.FlagSet) error {
		fmt.Fprintln(e.stdout, "database schema is up to date")
		return nil
	})
}

// runImport brings existing TOTP secrets from another system: otpauth://
// URIs, one per line as "USER URI", or CSV rows "user,uri" or
// "user,secret[,algorithm,digits,period,name]". A line whose secret the
// user already has is skipped and reported, not failed, so running an
// import again changes nothing and succeeds.
func runImport(ctx context.Context, e *env, args []string) error {
	var tenant *string
	return adminCmd(ctx, e, args, "twofa import [--tenant T] FILE|-", func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", "default", "the users' tenant")
	}, func(ctx context.Context, svc *twofa.Service, _ store, fs *flag.FlagSet) error {
		if fs.NArg() != 1 {
			return usageError("import takes one file, or - for standard input")
		}
		var r io.Reader = e.stdin
		if fs.Arg(0) != "-" {
			f, err := os.Open(fs.Arg(0))
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		cr.Comment = '#'
		cr.TrimLeadingSpace = true
		imported, skipped, failed := 0, 0, 0
		for line := 1; ; line++ {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("line %d: malformed CSV", line)
			}
			if len(rec) == 1 { // "USER URI", space separated
				rec = strings.Fields(rec[0])
			}
			if line == 1 && len(rec) > 0 && strings.EqualFold(rec[0], "user") {
				continue // a header
			}
			user, req, err := importRecord(rec)
			if err == nil {
				_, err = svc.ImportTOTP(ctx, twofa.UserRef{Tenant: *tenant, User: user}, req)
			}
			clear(req.Secret)
			if errors.Is(err, twofa.ErrDuplicate) {
				skipped++
				fmt.Fprintf(e.stdout, "line %d: skipped: %s\n", line, twofa.ErrorMessage(err))
				continue
			}
			if err != nil {
				failed++
				// The message names the line, never the secret.
				fmt.Fprintf(e.stderr, "line %d: %s\n", line, twofa.ErrorMessage(err))
				continue
			}
			imported++
		}
		fmt.Fprintf(e.stdout, "imported %d devices, skipped %d already there, %d lines failed\n", imported, skipped, failed)
		if failed > 0 {
			return exitError{code: 1}
		}
		return nil
	})
}

func importRecord(rec []string) (string, twofa.ImportRequest, error) {
	var req twofa.ImportRequest
	if len(rec) < 2 || rec[0] == "" {
		return "", req, twofa.Errorf(twofa.EINVALID, "want user and otpauth URI, or user and secret")
	}
	if strings.HasPrefix(strings.ToLower(rec[1]), "otpauth://") {
		u, err := otp.ParseURI(rec[1])
		if err != nil {
			return "", req, twofa.Errorf(twofa.EINVALID, "%s", strings.TrimPrefix(err.Error(), "otp: "))
		}
		if u.Type != otp.TypeTOTP {
			return "", req, twofa.Errorf(twofa.EINVALID, "only TOTP secrets can be imported")
		}
		req.Secret, req.Params = u.Secret, u.Params
		if u.Issuer != "" {
			req.Name = u.Issuer
		}
		return rec[0], req, nil
	}
	secret, err := otp.DecodeSecret(rec[1])
	if err != nil {
		return "", req, twofa.Errorf(twofa.EINVALID, "%s", strings.TrimPrefix(err.Error(), "otp: "))
	}
	req.Secret = secret
	if len(rec) > 2 && rec[2] != "" {
		if req.Params.Algorithm, err = otp.ParseAlgorithm(rec[2]); err != nil {
			return "", req, twofa.Errorf(twofa.EINVALID, "algorithm must be SHA1, SHA256 or SHA512")
		}
	}
	for i, dst := range []*int{&req.Params.Digits, &req.Params.Period} {
		if len(rec) > 3+i && rec[3+i] != "" {
			if _, err := fmt.Sscan(rec[3+i], dst); err != nil {
				return "", req, twofa.Errorf(twofa.EINVALID, "digits and period must be numbers")
			}
		}
	}
	if len(rec) > 5 {
		req.Name = rec[5]
	}
	return rec[0], req, nil
}

// plural is "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
