package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/twofa/twofa/client"
)

func ExampleNew() {
	c := client.New("https://twofa.internal:8080", "tfa_...",
		client.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	fmt.Println(c)
	// Output: client.Client{https://twofa.internal:8080}
}

// At login, after the password: let the user in only on Valid.
func ExampleClient_Verify() {
	c := client.New("https://twofa.internal:8080", "tfa_...")
	http.HandleFunc("POST /login/code", func(w http.ResponseWriter, r *http.Request) {
		userID := "alice" // from the session the password step began
		ctx := client.WithEndUser(r.Context(), "203.0.113.9", r.UserAgent())
		res, err := c.Verify(ctx, userID, r.FormValue("code"))
		var e *client.Error
		switch {
		case client.IsLocked(err) && errors.As(err, &e):
			http.Error(w, fmt.Sprintf("Too many attempts: try again in %s.", e.RetryAfter), http.StatusTooManyRequests)
		case client.IsMalformedCode(err):
			http.Error(w, "That is not a code: check it and type it again.", http.StatusBadRequest)
		case err != nil:
			log.Printf("verify: %v", err) // never holds the key or the code
			http.Error(w, "Something went wrong.", http.StatusInternalServerError)
		case !res.Valid:
			http.Error(w, "Wrong code.", http.StatusUnauthorized)
		default:
			fmt.Fprintf(w, "Welcome back (%d backup codes left).", res.BackupCodesRemaining)
		}
	})
}

// Enrollment: show the QR code, then confirm with the first code from the
// user's app and show the backup codes once.
func ExampleClient_Enroll() {
	c := client.New("https://twofa.internal:8080", "tfa_...")
	ctx := context.Background()

	en, err := c.Enroll(ctx, "alice", client.EnrollRequest{Name: "Phone", Issuer: "ACME", AccountName: "alice@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	// Show en.QRPNG (or en.QRSVG, or en.Secret to type in); never log them.
	var code string // typed by the user from the app

	res, err := c.Confirm(ctx, "alice", en.DeviceID, code)
	if err != nil {
		log.Fatal(err)
	}
	if !res.Valid {
		fmt.Println("Wrong code: try the next one.")
		return
	}
	fmt.Println("Save these backup codes:", res.BackupCodes)
}

func ExampleIsLocked() {
	err := error(&client.Error{Status: 429, Code: client.CodeRateLimited, Reason: client.ReasonLocked, RetryAfter: 30 * time.Second})
	var e *client.Error
	if client.IsLocked(err) && errors.As(err, &e) {
		fmt.Println("locked; retry after", e.RetryAfter)
	}
	// Output: locked; retry after 30s
}

func ExampleClient_AuditEvents() {
	admin := client.New("https://twofa.internal:8080", "tfa_admin...")
	q := client.AuditQuery{UserID: "alice", Limit: 500}
	for {
		page, err := admin.AuditEvents(context.Background(), q)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range page.Events {
			fmt.Println(e.Seq, e.Time.Format(time.RFC3339), e.Type, e.IP)
		}
		if page.NextAfter == 0 {
			break
		}
		q.After = page.NextAfter
	}
}

// Email as a fallback at sign-in: send a code, let the user ask for
// another once ResendAfter has passed, and let them in only on Valid.
func ExampleClient_StartChallenge() {
	c := client.New("https://twofa.internal:8080", "tfa_...")
	ctx := context.Background()

	ch, err := c.StartChallenge(ctx, "alice", "email", "")
	if err != nil {
		log.Fatal(err) // client.IsNotEnrolled: the user has no email address
	}
	// Keep ch.ID in the sign-in session; show "Send another code" from
	// ch.ResendAfter on. A resend keeps the earlier codes valid.
	if time.Now().After(ch.ResendAfter) {
		switch again, err := c.ResendChallenge(ctx, "alice", ch.ID); {
		case client.IsRateLimited(err):
			fmt.Println("Wait a little before asking for another code.")
		case err == nil:
			ch = again
		}
	}
	var code string // the 8 digits the user typed from the email
	res, err := c.VerifyChallenge(ctx, "alice", ch.ID, code)
	var e *client.Error
	switch {
	case errors.As(err, &e) && e.Reason == client.ReasonChallengeEnded:
		fmt.Println("That code no longer works: ask for a new one.")
	case err != nil:
		log.Fatal(err)
	case !res.Valid:
		fmt.Println("Wrong code.")
	default:
		fmt.Println("Welcome back.")
	}
}
