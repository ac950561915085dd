package web

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

// chartSeries are the outcomes the chart counts, with colours that keep
// at least 3:1 against white and apart from each other.
var chartSeries = []struct {
	Types []twofa.EventType
	Label string
	Color string
}{
	// A sign-in with a backup code succeeded as much as one with TOTP.
	{[]twofa.EventType{twofa.EventVerifySucceeded, twofa.EventBackupCodeUsed}, "Succeeded", "#0b57d0"},
	{[]twofa.EventType{twofa.EventVerifyFailed}, "Failed", "#b3261e"},
	{[]twofa.EventType{twofa.EventReplayRejected}, "Replayed code", "#8a5a00"},
	{[]twofa.EventType{twofa.EventLocked}, "Locked out", "#6a1b9a"},
}

// Geometry of the chart, in SVG user units.
const (
	chartW, chartH = 600, 260
	chartLeft      = 44
	chartTop       = 12
	chartBottom    = 36
	chartHours     = 24
	chartMaxEvents = 200000 // beyond this many events, the chart says it is partial
)

// adminChartData is the chart page's.
type adminChartData struct {
	adminBase
	Start, End time.Time
	Legend     []chartLegend
	Rows       []chartRow // the table: one row an hour
	Bars       []chartBar
	XLabels    []chartLabel
	YTicks     []chartLabel
	Max        int
	Partial    bool
	W, H       int
	Left, Base int // the plot's left edge and baseline
	Right      int
}

type chartLegend struct {
	Label, Color string
	Total        int
}

type chartRow struct {
	Hour   string
	Counts []int
	Total  int
}

type chartBar struct {
	X, Y, W, H  int
	Color, Kind string
	Count       int
	Title       string
}

type chartLabel struct {
	X, Y int
	Text string
}

// adminChart draws verifications by outcome over the last 24 hours, an
// hour a bar, as an SVG drawn here (no script) with the same numbers in a
// table for screen readers and for anyone who wants the figures.
func (s *server) adminChart(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	end := s.now().UTC().Truncate(time.Hour).Add(time.Hour)
	start := end.Add(-chartHours * time.Hour)
	counts := make([][]int, chartHours)
	for i := range counts {
		counts[i] = make([]int, len(chartSeries))
	}
	d := adminChartData{adminBase: adminBase{Nav: "chart", Tenant: ss.Tenant}, Start: start, End: end}
	// The first page from start by the index on time, the next ones on
	// from the last entry read: entries are appended in nearly, not
	// exactly, time order, so each is placed by its own time.
	f := twofa.AuditFilter{Tenant: ss.Tenant, Since: start, Limit: 1000}
	seen := 0
	var err error
	for {
		var events []*twofa.AuditEvent
		if events, err = s.svc.AuditEvents(ctx, f); err != nil {
			break
		}
		for _, e := range events {
			h := int(e.Time.Sub(start) / time.Hour)
			if h < 0 || h >= chartHours {
				continue
			}
			for i, c := range chartSeries {
				if slices.Contains(c.Types, e.Type) {
					counts[h][i]++
				}
			}
		}
		seen += len(events)
		if len(events) < 1000 {
			break
		}
		if seen >= chartMaxEvents {
			d.Partial = true
			break
		}
		f.After, f.Since = events[len(events)-1].Seq, time.Time{}
	}
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't draw the chart", msg, errorPage{NextURL: "/admin", NextText: "Back to the console"})
		return
	}
	d.layout(counts)
	s.render(w, r, http.StatusOK, "admin_chart.html", view{Title: "Verifications in the last 24 hours", CSRF: ss.CSRF, Data: d})
}

// layout places the bars, stacked by outcome, and the axes' labels.
func (d *adminChartData) layout(counts [][]int) {
	d.W, d.H, d.Left, d.Base, d.Right = chartW, chartH, chartLeft, chartH-chartBottom, chartW-4
	for _, c := range chartSeries {
		d.Legend = append(d.Legend, chartLegend{Label: c.Label, Color: c.Color})
	}
	for h, row := range counts {
		total := 0
		for i, n := range row {
			total += n
			d.Legend[i].Total += n
		}
		d.Max = max(d.Max, total)
		hour := d.Start.Add(time.Duration(h) * time.Hour)
		d.Rows = append(d.Rows, chartRow{Hour: hour.Format("15:04"), Counts: row, Total: total})
	}
	top := niceCeil(d.Max)
	plotH := d.Base - chartTop
	slot := float64(d.Right-d.Left) / chartHours
	for h, row := range d.Rows {
		x := d.Left + int(float64(h)*slot+slot*0.15)
		y := d.Base
		for i, n := range row.Counts {
			if n == 0 {
				continue
			}
			bh := max(1, n*plotH/top)
			y -= bh
			c := chartSeries[i]
			d.Bars = append(d.Bars, chartBar{X: x, Y: y, W: int(slot * 0.7), H: bh, Color: c.Color, Kind: string(c.Types[0]), Count: n,
				Title: fmt.Sprintf("%s–%s UTC: %d %s", row.Hour, d.Start.Add(time.Duration(h+1)*time.Hour).Format("15:04"), n, strings.ToLower(c.Label))})
		}
		if h%3 == 0 {
			d.XLabels = append(d.XLabels, chartLabel{X: d.Left + int(float64(h)*slot+slot/2), Y: d.Base + 18, Text: row.Hour})
		}
	}
	ticks := []int{0, top}
	if top%2 == 0 {
		ticks = []int{0, top / 2, top}
	}
	for _, v := range ticks {
		d.YTicks = append(d.YTicks, chartLabel{X: d.Left - 6, Y: d.Base - v*plotH/top, Text: strconv.Itoa(v)})
	}
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten, for the y axis.
func niceCeil(n int) int {
	if n <= 1 {
		return 1
	}
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}
