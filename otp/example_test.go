package otp_test

import (
	"fmt"
	"time"

	"github.com/twofa/twofa/otp"
)

// The RFC 6238 test secret, for reproducible examples. Real secrets come
// from otp.GenerateSecret.
var rfcSecret = []byte("12345678901234567890")

func ExampleKey_TOTP() {
	k, err := otp.NewKey(rfcSecret, otp.Params{Digits: 8})
	if err != nil {
		panic(err)
	}
	fmt.Println(k.TOTP(time.Unix(1111111109, 0)))
	// Output: 07081804
}

func ExampleKey_Verify() {
	k, _ := otp.NewKey(rfcSecret, otp.Params{})
	now := time.Unix(1234567890, 0)
	code := k.TOTP(now.Add(-30 * time.Second)) // typed a little late

	m, err := k.Verify(code, now, otp.DefaultWindow)
	if err != nil {
		fmt.Println("malformed:", err)
		return
	}
	// Keep m.Step: a later code is accepted only at a newer step.
	fmt.Println(m.Valid, m.Offset)

	_, err = k.Verify("12345", now, otp.DefaultWindow)
	fmt.Println(err)
	// Output:
	// true -1
	// otp: code must be 6 digits, got 5
}

func ExampleKey_HOTP() {
	k, _ := otp.NewKey(rfcSecret, otp.Params{})
	for c := uint64(0); c < 3; c++ {
		fmt.Println(k.HOTP(c))
	}
	// Output:
	// 755224
	// 287082
	// 359152
}

func ExampleURI_Format() {
	u := otp.URI{Type: otp.TypeTOTP, Issuer: "ACME Co", Account: "jane@example.com", Secret: rfcSecret}
	s, err := u.Format()
	if err != nil {
		panic(err)
	}
	fmt.Println(s)
	fmt.Println(u) // printing redacts the secret
	// Output:
	// otpauth://totp/ACME%20Co:jane@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30
	// otpauth://totp/ACME%20Co:jane@example.com?secret=REDACTED&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30
}

func ExampleParseURI() {
	u, err := otp.ParseURI("otpauth://totp/Big%20Corporation%3A%20alice%40bigco.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=sha256&digits=8")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s / %s / %v %d digits %ds\n", u.Issuer, u.Account, u.Params.Algorithm, u.Params.Digits, u.Params.Period)
	// Popular apps would show wrong codes for this one.
	fmt.Println(len(u.Compatibility()), "compatibility warnings")
	// Output:
	// Big Corporation / alice@bigco.com / SHA256 8 digits 30s
	// 2 compatibility warnings
}

func ExampleDecodeSecret() {
	b, err := otp.DecodeSecret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq")
	fmt.Printf("%s %v\n", b, err)
	_, err = otp.DecodeSecret("GEZDGNBVGY3TQOJ0")
	fmt.Println(err)
	// Output:
	// 12345678901234567890 <nil>
	// otp: secret is not valid base32: invalid character at position 16
}

func ExampleGenerateSecret() {
	secret, err := otp.GenerateSecret(otp.SHA1)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(secret), len(otp.EncodeSecret(secret)))
	// Output: 20 32
}

func ExampleQR_Terminal() {
	q, err := otp.NewQR("otpauth://totp/X:y?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", otp.RecoveryM)
	if err != nil {
		panic(err)
	}
	fmt.Println(q.Size(), "modules a side")
	// q.Terminal(otp.DefaultQuietZone, false) draws it in a terminal;
	// q.PNG(256, otp.DefaultQuietZone) and q.SVG(otp.DefaultQuietZone) for pages.
	// Output: 33 modules a side
}
