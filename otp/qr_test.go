package otp

import (
	"bytes"
	"image/png"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// svgRun matches one horizontal run of dark modules in the SVG path.
var svgRun = regexp.MustCompile(`M\d+ \d+h(\d+)v1h-\d+z`)

func TestQR_Renderings(t *testing.T) {
	const content = "otpauth://totp/ACME%20Co:john@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co"
	for _, r := range []Recovery{RecoveryL, RecoveryM, RecoveryQ, RecoveryH} {
		q, err := NewQR(content, r)
		if err != nil {
			t.Fatalf("NewQR(%d): %v", r, err)
		}
		// Versions have 17+4v modules a side.
		if n := q.Size(); n < 21 || (n-17)%4 != 0 {
			t.Fatalf("recovery %d: %d modules a side", r, n)
		}
		t.Run("PNG", func(t *testing.T) {
			const size = 300
			b, err := q.PNG(size, DefaultQuietZone)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if got := img.Bounds().Dx(); got != size || img.Bounds().Dy() != size {
				t.Fatalf("PNG is %v, want %dx%d", img.Bounds(), size, size)
			}
			scale := size / (q.Size() + 2*DefaultQuietZone)
			off := (size - scale*q.Size()) / 2
			for y := -DefaultQuietZone; y < q.Size()+DefaultQuietZone; y++ {
				for x := -DefaultQuietZone; x < q.Size()+DefaultQuietZone; x++ {
					px, py := off+x*scale+scale/2, off+y*scale+scale/2
					r, _, _, _ := img.At(px, py).RGBA()
					if got := r < 0x8000; got != q.Dark(x, y) {
						t.Fatalf("module (%d,%d): dark=%v in PNG, want %v", x, y, got, q.Dark(x, y))
					}
				}
			}
		})
		t.Run("Terminal", func(t *testing.T) {
			for _, invert := range []bool{false, true} {
				lines := strings.Split(strings.TrimSuffix(q.Terminal(2, invert), "\n"), "\n")
				if want := (q.Size() + 4 + 1) / 2; len(lines) != want {
					t.Fatalf("%d lines, want %d", len(lines), want)
				}
				for i, line := range lines {
					cells := []rune(line)
					if len(cells) != q.Size()+4 {
						t.Fatalf("line %d has %d cells, want %d", i, len(cells), q.Size()+4)
					}
					for j, c := range cells {
						x, y := j-2, 2*i-2
						top := c == '█' || c == '▀'
						bottom := c == '█' || c == '▄'
						if top != (q.Dark(x, y) == invert) || (y+1 < q.Size()+2 && bottom != (q.Dark(x, y+1) == invert)) {
							t.Fatalf("invert=%v cell (%d,%d) = %q does not match the modules", invert, j, i, c)
						}
					}
				}
			}
		})
		t.Run("SVG", func(t *testing.T) {
			svg := q.SVG(DefaultQuietZone)
			span := q.Size() + 2*DefaultQuietZone
			if !strings.HasPrefix(svg, "<svg ") || !strings.Contains(svg, `viewBox="0 0 `) || !strings.HasSuffix(svg, "</svg>") {
				t.Fatalf("not an SVG document: %.80s", svg)
			}
			dark := 0
			for i := 0; i < q.Size()*q.Size(); i++ {
				if q.dark[i] {
					dark++
				}
			}
			// Each run "M x yhNv1h-Nz" covers N modules: count them.
			covered := 0
			for _, m := range svgRun.FindAllStringSubmatch(svg, -1) {
				n, _ := strconv.Atoi(m[1])
				covered += n
			}
			if covered != dark || span <= q.Size() {
				t.Errorf("SVG paths cover %d modules, want %d", covered, dark)
			}
		})
	}
}

func TestQR_Errors(t *testing.T) {
	if _, err := NewQR("", RecoveryM); err == nil {
		t.Error("empty content: want error")
	}
	if _, err := NewQR(strings.Repeat("x", 5000), RecoveryH); err == nil {
		t.Error("5000 bytes: want error")
	}
	if _, err := NewQR("x", Recovery(9)); err == nil {
		t.Error("unknown recovery: want error")
	}
	q, _ := NewQR("otpauth://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", RecoveryM)
	if _, err := q.PNG(20, 4); err == nil {
		t.Error("20-pixel PNG: want error")
	}
	if _, err := q.PNG(300, -1); err == nil {
		t.Error("negative quiet zone: want error")
	}
	if strings.Contains(q.String(), "secret") {
		t.Errorf("String shows content: %s", q)
	}
}
