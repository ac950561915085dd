package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus metrics of one handler, in a registry of its
// own so that handlers in one process (tests) do not collide.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.HistogramVec
	verifications *prometheus.CounterVec
	lockouts      prometheus.Counter
	enrollments   *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "twofa_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"route", "status"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twofa_verifications_total",
			Help: "Verifications by outcome (valid, invalid, error) and reason or factor.",
		}, []string{"outcome", "reason"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twofa_lockouts_total",
			Help: "Failures that locked a user out.",
		}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twofa_enrollments_total",
			Help: "Enrollments by stage: started, confirmed, failed.",
		}, []string{"stage"}),
	}
	m.reg.MustRegister(m.requests, m.verifications, m.lockouts, m.enrollments,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}
