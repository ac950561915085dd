package web

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twofa/twofa"
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

// watchOutbox exports the outbox's state, read from the Service at each
// scrape, and the worker's sends if sends is not nil.
func (m *metrics) watchOutbox(svc *twofa.Service, sends *SendCounter, now func() time.Time, log *slog.Logger) {
	m.reg.MustRegister(&outboxCollector{svc: svc, now: now, log: log})
	if sends != nil {
		m.reg.MustRegister(sends.vec)
	}
}

// outboxScrapeTimeout bounds the reading of the outbox's state: a scrape
// must not hang on a busy database.
const outboxScrapeTimeout = 2 * time.Second

// outboxCollector reads the outbox's counts at scrape time, so that every
// replica reports the one outbox they share, as it is.
type outboxCollector struct {
	svc *twofa.Service
	now func() time.Time
	log *slog.Logger
}

var (
	outboxMessagesDesc = prometheus.NewDesc("twofa_outbox_messages",
		"Outbox messages by status: queued (waiting to be sent or retried), sent, failed (for good; see twofa outbox list --failed).",
		[]string{"status"}, nil)
	outboxOldestDesc = prometheus.NewDesc("twofa_outbox_oldest_queued_age_seconds",
		"Age of the oldest queued outbox message; 0 when none is queued. Growing: messages are not going out.",
		nil, nil)
)

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxMessagesDesc
	ch <- outboxOldestDesc
}

// Collect reports nothing when the state cannot be read in time, and logs
// why, rather than failing the whole scrape.
func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxScrapeTimeout)
	defer cancel()
	st, err := c.svc.OutboxStats(ctx)
	if err != nil {
		c.log.Error("metrics: reading the outbox", "err", err)
		return
	}
	for status, n := range map[twofa.MessageStatus]int64{
		twofa.MessageQueued: st.Queued, twofa.MessageSent: st.Sent, twofa.MessageFailed: st.Failed,
	} {
		ch <- prometheus.MustNewConstMetric(outboxMessagesDesc, prometheus.GaugeValue, float64(n), string(status))
	}
	age := 0.0
	if !st.OldestQueued.IsZero() {
		age = max(0, c.now().Sub(st.OldestQueued).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(outboxOldestDesc, prometheus.GaugeValue, age)
}

// SendCounter counts the outbox worker's tries by channel and outcome,
// for /metrics: give it to Options.Sends, and its Observe to
// twofa.DeliverOptions.OnSend.
type SendCounter struct{ vec *prometheus.CounterVec }

// NewSendCounter returns a counter with every known channel and outcome
// at 0, so that rates exist before the first send.
func NewSendCounter() *SendCounter {
	c := &SendCounter{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twofa_outbox_sends_total",
		Help: "Outbox send tries by channel and outcome: sent, retry (failed, will be tried again), failed (for good), expired (a code too old to send).",
	}, []string{"channel", "outcome"})}
	for _, ch := range []twofa.Channel{twofa.ChannelEmail, twofa.ChannelWebhook} {
		for _, o := range []twofa.SendOutcome{twofa.SendSent, twofa.SendRetry, twofa.SendFailed, twofa.SendExpired} {
			c.vec.WithLabelValues(string(ch), string(o))
		}
	}
	return c
}

// Observe counts one try.
func (c *SendCounter) Observe(ch twofa.Channel, o twofa.SendOutcome) {
	c.vec.WithLabelValues(string(ch), string(o)).Inc()
}
