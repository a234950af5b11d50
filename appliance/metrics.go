package appliance

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/proxy"
)

// proxyCollector reads the pipeline's atomic counters at scrape time.
type proxyCollector struct {
	stats *proxy.Stats
	certs *proxy.CertStore

	conns, decisions, requests, upstream, leaf, latency *prometheus.Desc
	h1Plain, h1HandedOver                               *prometheus.Desc
}

var _ prometheus.Collector = (*proxyCollector)(nil)

func newProxyCollector(s *proxy.Stats, certs *proxy.CertStore) *proxyCollector {
	return &proxyCollector{
		stats:     s,
		certs:     certs,
		conns:     prometheus.NewDesc("portcullis_proxy_connections_total", "Client connections by outcome before any request.", []string{"outcome"}, nil),
		decisions: prometheus.NewDesc("portcullis_proxy_access_decisions_total", "Connection-level access decisions.", []string{"verdict"}, nil),
		requests:  prometheus.NewDesc("portcullis_proxy_requests_total", "Intercepted requests by outcome.", []string{"outcome"}, nil),
		upstream:  prometheus.NewDesc("portcullis_proxy_upstream_failures_total", "Requests that failed upstream, by reason.", []string{"reason"}, nil),
		leaf:      prometheus.NewDesc("portcullis_proxy_leaf_certificates_total", "Leaf certificate cache events.", []string{"event"}, nil),
		latency:   prometheus.NewDesc("portcullis_proxy_request_duration_seconds", "Intercepted request durations, from request to the end of the response.", nil, nil),
		h1Plain:   prometheus.NewDesc("portcullis_proxy_http1_plain_requests_total", "HTTP/1.1 requests the pipeline read and answered itself.", nil, nil),
		h1HandedOver: prometheus.NewDesc("portcullis_proxy_http1_handovers_total",
			"HTTP/1.1 connections handed to the general HTTP server at a request that was not plain (a chunked or oddly framed body, Expect, an upgrade, an unusual or malformed head); it serves them from then on.", nil, nil),
	}
}

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.decisions, c.requests, c.upstream, c.leaf, c.latency, c.h1Plain, c.h1HandedOver} {
		ch <- d
	}
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	counter(c.conns, s.ConnsAccepted.Load(), "accepted")
	counter(c.conns, s.ConnsNotTLS.Load(), "not_tls")
	counter(c.conns, s.HelloMalformed.Load(), "malformed_hello")
	counter(c.conns, s.HelloIncomplete.Load(), "incomplete_hello")
	counter(c.conns, s.HandshakeFailed.Load(), "handshake_failed")
	counter(c.conns, s.RefusedUnrecorded.Load(), "refused_unrecorded")
	counter(c.decisions, s.Intercepted.Load(), "intercept")
	counter(c.decisions, s.Bypassed.Load(), "bypass")
	counter(c.decisions, s.Blocked.Load(), "block")
	counter(c.requests, s.Requests.Load(), "total")
	counter(c.requests, s.RequestsBlocked.Load(), "blocked")
	counter(c.requests, s.Misdirected.Load(), "misdirected")
	counter(c.upstream, s.UpstreamUnverified.Load(), "certificate")
	counter(c.upstream, s.UpstreamErrors.Load(), "error")
	ch <- prometheus.MustNewConstMetric(c.h1Plain, prometheus.CounterValue, float64(s.H1Plain.Load()))
	ch <- prometheus.MustNewConstMetric(c.h1HandedOver, prometheus.CounterValue, float64(s.H1HandedOver.Load()))
	h := s.RequestLatency()
	buckets := make(map[float64]uint64, len(proxy.LatencyBuckets))
	for i, b := range proxy.LatencyBuckets {
		buckets[b] = h.Cumulative[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, h.Count, h.Sum, buckets)
	st := c.certs.Stats()
	counter(c.leaf, st.Hits, "hit")
	counter(c.leaf, st.Misses, "miss")
	counter(c.leaf, st.Mints, "mint")
	counter(c.leaf, st.PoolEmpty, "key_pool_empty")
}
