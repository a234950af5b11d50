package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the datapath's counters, read from the maps at scrape
// time, so a metric is never staler than the scrape.
type collector struct {
	agent     *Agent
	packets   *prometheus.Desc
	assignErr *prometheus.Desc
	listener  *prometheus.Desc
	mode      *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// Collector returns a Prometheus collector for the datapath. Register it on
// the caller's own registry:
//
//	portcullis_datapath_packets_total{result}     packets by outcome (see Counters)
//	portcullis_datapath_assign_errors_total       failed bpf_sk_assign calls
//	portcullis_datapath_listener_present{family}  1 while a listener is in the sockmap
//	portcullis_datapath_attach_mode{mode}         1 for the hook in use: tcx, tc or sk_lookup
//
// With route steering (attach mode sk_lookup) packets_total has only the
// results it counts, which are connections (SYNs), not packets:
// steered and no_listener_refused (see Counters). The others are not
// exported rather than left at zero: the kernel forwards bypassed and
// not-intercepted packets, and delivers established ones, with no program.
func (a *Agent) Collector() prometheus.Collector {
	return &collector{
		agent: a,
		packets: prometheus.NewDesc("portcullis_datapath_packets_total",
			"Packets seen by the steering program, by result.", []string{"result"}, nil),
		assignErr: prometheus.NewDesc("portcullis_datapath_assign_errors_total",
			"bpf_sk_assign calls that failed; the packets fell back to the fail mode.", nil, nil),
		listener: prometheus.NewDesc("portcullis_datapath_listener_present",
			"Whether a proxy listener is in the datapath's sockmap (0: the fail mode applies).", []string{"family"}, nil),
		mode: prometheus.NewDesc("portcullis_datapath_attach_mode",
			"How the steering program is attached (1 for the mode in use): tcx, or tc (clsact) on kernels before 6.6, or sk_lookup (route steering).", []string{"mode"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.assignErr
	ch <- c.listener
	ch <- c.mode
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	at := c.agent.Attachment()
	ch <- prometheus.MustNewConstMetric(c.mode, prometheus.GaugeValue, 1, string(at.Mode))
	counters, err := c.agent.Counters()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.packets, err)
		return
	}
	for _, f := range counterFields {
		if !at.Steering.CountsPackets() && !f.route {
			continue
		}
		n := float64(*f.field(&counters))
		if f.label == "" {
			ch <- prometheus.MustNewConstMetric(c.assignErr, prometheus.CounterValue, n)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, n, f.label)
	}
	v4, v6, err := c.agent.listenersPresent()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.listener, err)
		return
	}
	for family, ok := range map[string]bool{"ipv4": v4, "ipv6": v6} {
		ch <- prometheus.MustNewConstMetric(c.listener, prometheus.GaugeValue, gauge(ok), family)
	}
}

func gauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
