package smtp

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"slices"
	"strings"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/twofa/twofa"
)

// Error is a failed send: the step that failed and the server's reply
// code. It keeps out the server's words, which may repeat the address,
// and never holds the message.
type Error struct {
	Op        string // "connect", "AUTH", "MAIL FROM", "RCPT TO", "DATA", ...
	Code      int    // the SMTP reply code; 0 when the server gave none
	Enhanced  string // the enhanced status code (RFC 3463), when the server gives them
	Temporary bool   // a retry may succeed
	err       error  // a cause with no server words in it (a network error), or nil
}

func (e *Error) Error() string {
	s := "smtp: " + e.Op
	switch {
	case e.Code != 0 && e.Enhanced != "":
		s += fmt.Sprintf(": the server replied %d %s", e.Code, e.Enhanced)
	case e.Code != 0:
		s += fmt.Sprintf(": the server replied %d", e.Code)
	case e.err != nil:
		s += ": " + e.err.Error()
	default:
		s += ": the connection failed"
	}
	return s
}

// Unwrap returns the network error that caused e, if any.
func (e *Error) Unwrap() error { return e.err }

// classify marks e Permanent unless it is temporary, and says so when
// ctx ended first.
func classify(ctx context.Context, e *Error) error {
	if ctx.Err() != nil && e.Code == 0 {
		e.Temporary, e.err = true, fmt.Errorf("%w (%v)", ctx.Err(), e.err)
	}
	if e.Temporary {
		return e
	}
	return twofa.Permanent(e)
}

// errNoMechanism is a server that offers neither PLAIN nor LOGIN.
var errNoMechanism = errors.New("the server offers neither PLAIN nor LOGIN")

// auth is PLAIN when the server offers it, else LOGIN: the two that every
// submission server has. It remembers being started, so that a failure can
// be told to be the credentials'.
type auth struct {
	user, password, host string
	started              bool
	inner                gosmtp.Auth
}

func (a *auth) Start(s *gosmtp.ServerInfo) (string, []byte, error) {
	a.started = true
	switch {
	case slices.Contains(s.Auth, "PLAIN"):
		a.inner = gosmtp.PlainAuth("", a.user, a.password, a.host, false)
	case slices.Contains(s.Auth, "LOGIN"):
		a.inner = gosmtp.LoginAuth(a.user, a.password, a.host, false)
	default:
		return "", nil, errNoMechanism
	}
	return a.inner.Start(s)
}

func (a *auth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.inner.Next(fromServer, more)
}

// dialError classifies a failure to connect, greet, start TLS or
// authenticate. Refused credentials are permanent (as is a server that
// takes none of ours, or one that would have them in the clear); all the
// rest may pass.
func dialError(ctx context.Context, err error, a *auth) error {
	var tp *textproto.Error
	isReply := errors.As(err, &tp)
	if a.started {
		e := &Error{Op: "AUTH"}
		switch {
		case isReply:
			e.Code, e.Enhanced, e.Temporary = tp.Code, enhancedCode(tp), tp.Code/100 == 4
		case errors.Is(err, errNoMechanism):
			e.err = errNoMechanism
		case errors.Is(err, gosmtp.ErrUnencrypted):
			e.err = errClear
		case errors.Is(err, gosmtp.ErrWrongHostname):
			e.err = gosmtp.ErrWrongHostname
		default:
			e.Temporary, e.err = true, err
		}
		return classify(ctx, e)
	}
	// Go's and go-mail's own words (a refused connection, a certificate
	// that does not verify, no STARTTLS), or a reply code alone.
	e := &Error{Op: "connect", Temporary: true}
	if isReply {
		e.Code, e.Enhanced = tp.Code, enhancedCode(tp)
	} else {
		e.err = err
	}
	return classify(ctx, e)
}

// enhancedCode is the enhanced status code that opens a reply's text, as
// in "535 5.7.8 Authentication failed", or "".
func enhancedCode(tp *textproto.Error) string {
	code, _, _ := strings.Cut(tp.Msg, " ")
	if !enhancedRe.MatchString(code) || code[0] != byte('0'+tp.Code/100) {
		return ""
	}
	return code
}

var enhancedRe = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// errClear is a password that was not sent because the connection is not
// encrypted.
var errClear = errors.New("the connection is not encrypted, so the password was not sent")

// sendError classifies a failure of MAIL FROM, RCPT TO or DATA: a 5xx
// reply is permanent, anything else is not.
func sendError(ctx context.Context, err error) error {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return classify(ctx, &Error{Op: "send", Temporary: true})
	}
	e := &Error{Op: sendOp(se.Reason), Code: se.ErrorCode(), Enhanced: se.EnhancedStatusCode()}
	switch se.Reason {
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		e.Op = "the message's addresses"
	default:
		e.Temporary = e.Code/100 != 5
	}
	return classify(ctx, e)
}

func sendOp(r gomail.SendErrReason) string {
	switch r {
	case gomail.ErrSMTPMailFrom:
		return "MAIL FROM"
	case gomail.ErrSMTPRcptTo:
		return "RCPT TO"
	case gomail.ErrSMTPData, gomail.ErrWriteContent:
		return "DATA"
	case gomail.ErrSMTPDataClose:
		return "end of DATA"
	case gomail.ErrSMTPReset:
		return "RSET"
	case gomail.ErrConnCheck:
		return "connection check"
	default:
		return "send"
	}
}
