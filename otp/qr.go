package otp

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

// Recovery is the error-correction level of a QR code: how much of the
// symbol may be damaged or hidden and still be read.
type Recovery uint8

// The four QR levels. The zero value is RecoveryM, the usual choice for
// codes shown on a screen.
const (
	RecoveryM Recovery = iota // about 15 %
	RecoveryL                 // about 7 %
	RecoveryQ                 // about 25 %
	RecoveryH                 // about 30 %
)

func (r Recovery) qr() (qr.ErrorCorrectionLevel, error) {
	switch r {
	case RecoveryL:
		return qr.L, nil
	case RecoveryM:
		return qr.M, nil
	case RecoveryQ:
		return qr.Q, nil
	case RecoveryH:
		return qr.H, nil
	}
	return 0, fmt.Errorf("otp: unknown QR recovery level %d", r)
}

// DefaultQuietZone is the margin, in modules, that the QR specification asks for.
const DefaultQuietZone = 4

// QR is an encoded QR code: a square of dark and light modules. It holds
// its content, often a key URI with a secret, and so never prints it.
type QR struct {
	n    int
	dark []bool // row-major, n*n
}

// NewQR encodes content as a QR code at recovery level r.
func NewQR(content string, r Recovery) (*QR, error) {
	level, err := r.qr()
	if err != nil {
		return nil, err
	}
	if content == "" {
		return nil, errors.New("otp: QR content is empty")
	}
	code, err := qr.Encode(content, level, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("otp: content does not fit in a QR code (%d bytes)", len(content))
	}
	return fromBarcode(code), nil
}

func fromBarcode(code barcode.Barcode) *QR {
	b := code.Bounds()
	n := b.Dx()
	q := &QR{n: n, dark: make([]bool, n*n)}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			r, _, _, _ := code.At(b.Min.X+x, b.Min.Y+y).RGBA()
			q.dark[y*n+x] = r < 0x8000
		}
	}
	return q
}

// Size returns the number of modules on a side, without the quiet zone.
func (q *QR) Size() int { return q.n }

// Dark reports whether the module at column x, row y is dark. Coordinates
// outside the symbol (the quiet zone) are light.
func (q *QR) Dark(x, y int) bool {
	if x < 0 || y < 0 || x >= q.n || y >= q.n {
		return false
	}
	return q.dark[y*q.n+x]
}

// String hides the content; a QR code of a key URI carries its secret.
func (q *QR) String() string { return fmt.Sprintf("otp.QR{%d modules}", q.n) }

// PNG renders the code as a size×size grey-scale PNG with a margin of
// quiet modules. Modules are whole pixels, so the code is centred and any
// pixels left over widen the margin; a size too small for one pixel per
// module is an error.
func (q *QR) PNG(size, quiet int) ([]byte, error) {
	if quiet < 0 {
		return nil, errors.New("otp: negative quiet zone")
	}
	span := q.n + 2*quiet
	scale := size / span
	if scale < 1 {
		return nil, fmt.Errorf("otp: a PNG of %d pixels cannot hold %d modules", size, span)
	}
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	off := (size - scale*q.n) / 2
	for y := 0; y < q.n; y++ {
		for x := 0; x < q.n; x++ {
			if !q.dark[y*q.n+x] {
				continue
			}
			for dy := 0; dy < scale; dy++ {
				row := img.Pix[(off+y*scale+dy)*img.Stride:]
				for dx := 0; dx < scale; dx++ {
					row[off+x*scale+dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("otp: encoding PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// SVG renders the code as a scalable SVG document, one unit per module,
// with a quiet zone of quiet modules.
func (q *QR) SVG(quiet int) string {
	if quiet < 0 {
		quiet = 0
	}
	span := q.n + 2*quiet
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges" role="img" aria-label="QR code">`, span, span)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, span, span)
	for y := 0; y < q.n; y++ {
		for x := 0; x < q.n; {
			if !q.dark[y*q.n+x] {
				x++
				continue
			}
			run := 1
			for x+run < q.n && q.dark[y*q.n+x+run] {
				run++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", x+quiet, y+quiet, run, run)
			x += run
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String()
}

// Terminal renders the code with UTF-8 half blocks, two rows of modules per
// line of text. Terminals draw characters light on dark, so by default the
// light modules are the drawn ones; invert for a terminal with a light
// background.
func (q *QR) Terminal(quiet int, invert bool) string {
	if quiet < 0 {
		quiet = 0
	}
	drawn := func(x, y int) bool { return q.Dark(x, y) == invert }
	var b strings.Builder
	lo, hi := -quiet, q.n+quiet
	for y := lo; y < hi; y += 2 {
		for x := lo; x < hi; x++ {
			top, bottom := drawn(x, y), y+1 < hi && drawn(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
