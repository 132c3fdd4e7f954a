package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the API's Prometheus metrics, on a registry of the node's own
// (not the global one), which other components may register collectors on.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	recIn    *prometheus.CounterVec
	bytesIn  *prometheus.CounterVec
	recOut   *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
}

// NewMetrics creates the registry with Go and process collectors and the API's metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weir_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"method", "route"}),
		recIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_records_in_total", Help: "Records produced, by topic.",
		}, []string{"topic"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_bytes_in_total", Help: "Key and value bytes produced, by topic.",
		}, []string{"topic"}),
		recOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_records_out_total", Help: "Records consumed, by topic.",
		}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_bytes_out_total", Help: "Key and value bytes consumed, by topic.",
		}, []string{"topic"}),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency, m.recIn, m.bytesIn, m.recOut, m.bytesOut)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

func (m *Metrics) observeRequest(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(method, route).Observe(d.Seconds())
}

func (m *Metrics) recordsIn(topic string, records, bytes int) {
	m.recIn.WithLabelValues(topic).Add(float64(records))
	m.bytesIn.WithLabelValues(topic).Add(float64(bytes))
}

func (m *Metrics) recordsOut(topic string, records, bytes int) {
	m.recOut.WithLabelValues(topic).Add(float64(records))
	m.bytesOut.WithLabelValues(topic).Add(float64(bytes))
}
