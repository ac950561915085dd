module github.com/twofa/twofa

go 1.24

require (
	github.com/boombuler/barcode v1.1.0 // indirect
	github.com/pquerna/otp v1.5.0 // indirect
)
