package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// env is what a command reads from its surroundings; tests pass their own.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand of the binary.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the HTTP API", runServe},
		{"apikey", "create, list and revoke API keys", runAPIKey},
		{"users", "show, unlock or disable a user's second factors", runUsers},
		{"enroll", "enroll a user's TOTP device from this terminal", runEnroll},
		{"import", "import existing TOTP secrets (otpauth URIs or CSV)", runImport},
		{"tenant", "set a tenant's prompt key, return URLs and webhook", runTenant},
		{"keys", "rotate and inspect the master keyring", runKeys},
		{"audit", "verify or tail the audit log", runAudit},
		{"outbox", "list the messages twofa sends, find failed ones and retry them", runOutbox},
		{"migrate", "create or upgrade the database schema", runMigrate},
		{"otp", "compute, verify and provision one-time passwords (like oathtool)", runOTP},
		{"demo", "run twofa and a demo site that signs in with it, to try it out", runDemo},
		{"version", "print the version", runVersion},
	}
}

// version is set by the linker: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// run is the whole program: main only wires it to the process, so tests
// can start the real thing.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) < 2 || args[1] == "help" || args[1] == "-h" || args[1] == "--help" {
		usage(e.stderr, "twofa", "twofa is a self-hosted two-factor authentication service.", commands())
		if len(args) < 2 {
			return usageError("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[1] {
			return c.run(ctx, e, args[2:])
		}
	}
	return usageError(fmt.Sprintf("unknown command %q (see twofa help)", args[1]))
}

func runVersion(_ context.Context, e *env, _ []string) error {
	fmt.Fprintln(e.stdout, "twofa", version)
	return nil
}

func usage(w io.Writer, name, about string, cmds []command) {
	fmt.Fprintf(w, "%s\n\nUsage: %s COMMAND [flags]\n\nCommands:\n", about, name)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for the flags of a command.\n", name)
}

// exitError carries an exit status; an empty message prints nothing.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// usageError is a mistake in the command line: exit status 2.
func usageError(msg string) error { return exitError{code: 2, msg: msg} }

func exitCode(err error) int {
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	return 1
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning -h into a clean exit and other mistakes
// into a usage error. Flags may follow arguments, as operators type them
// ("twofa users show alice --tenant acme"); "--" ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(interspersed(fs, args))
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	if err != nil {
		return false, exitError{code: 2} // flag already printed the problem
	}
	// A bad value in the environment stops the program even when the
	// command line overrides it: it is a mistake waiting for the day the
	// flag is left out.
	if err := envErrors(fs); err != nil {
		return false, usageError(err.Error())
	}
	return false, nil
}

func trimNewline(s string) string { return strings.TrimRight(s, "\r\n") }

// interspersed moves the flags in args before the arguments, so that the
// flag package, which stops at the first argument, sees them all.
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // flag reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), rest...)
}
