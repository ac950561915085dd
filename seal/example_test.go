package seal_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log"

	"github.com/twofa/twofa/seal"
)

// Keys for the examples only; real ones come from seal.GenerateKey and live
// in the environment or a 0600 key file.
const (
	exampleKey1 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
	exampleKey2 = "ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4Q="
)

func ExampleKeyring_Seal() {
	kr, err := seal.ParseKeyring("1:" + exampleKey1)
	if err != nil {
		log.Fatal(err)
	}
	ad := seal.AD("totp-secret/v1", "tenant-1", "user-42", "device-7")
	blob, err := kr.Seal([]byte("JBSWY3DPEHPK3PXP"), ad)
	if err != nil {
		log.Fatal(err)
	}
	id, _ := seal.KeyID(blob)
	fmt.Println("sealed bytes:", len(blob), "key id:", id)

	secret, err := kr.Open(blob, ad)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("opened:", string(secret))

	// The same blob copied onto another user's row does not open.
	_, err = kr.Open(blob, seal.AD("totp-secret/v1", "tenant-1", "user-43", "device-7"))
	fmt.Println(errors.Is(err, seal.ErrAuth), err)
	// Output:
	// sealed bytes: 49 key id: 1
	// opened: JBSWY3DPEHPK3PXP
	// true seal: message authentication failed
}

func ExampleKeyring_Reseal() {
	ad := seal.AD("totp-secret/v1", "tenant-1", "user-42", "device-7")
	old, _ := seal.ParseKeyring("1:" + exampleKey1)
	blob, _ := old.Seal([]byte("JBSWY3DPEHPK3PXP"), ad)

	// Key 2 is added and made active by putting it first.
	kr, err := seal.ParseKeyring("2:" + exampleKey2 + ",1:" + exampleKey1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("needs rotation:", kr.NeedsRotation(blob))
	blob, changed, err := kr.Reseal(blob, ad)
	if err != nil {
		log.Fatal(err)
	}
	id, _ := seal.KeyID(blob)
	fmt.Println("changed:", changed, "key id:", id)

	// Once every row is resealed, key 1 is retired.
	retired, _ := seal.ParseKeyring("2:" + exampleKey2)
	secret, err := retired.Open(blob, ad)
	fmt.Println(string(secret), err)
	// Output:
	// needs rotation: true
	// changed: true key id: 2
	// JBSWY3DPEHPK3PXP <nil>
}

func ExampleParseKeyring() {
	kr, err := seal.ParseKeyring("2:" + exampleKey2 + ",1:" + exampleKey1)
	if err != nil {
		log.Fatal(err)
	}
	// Printing a keyring shows its key IDs and never key bytes.
	fmt.Println(kr)
	fmt.Println(kr.ActiveID(), kr.IDs())

	_, err = seal.ParseKeyring("1:" + exampleKey1[:43])
	fmt.Println(err)
	// Output:
	// seal.Keyring{active: 2, ids: [1 2]}
	// 2 [1 2]
	// seal: invalid key: keyring entry 1 (key id 1): not padded standard base64
}

func ExampleAD() {
	fmt.Printf("%q\n", seal.AD("totp-secret/v1", "t1", "u1", "d1"))
	// Output:
	// "\x0etotp-secret/v1\x02t1\x02u1\x02d1"
}

func ExampleGenerateKey() {
	key, err := seal.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	// This is the form ParseKey, ParseKeyring and LoadKeyFile accept.
	fmt.Println(len(base64.StdEncoding.EncodeToString(key)))
	// Output: 44
}
