package wgtunnel

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is the tunnel's status for Prometheus.
type Metrics struct {
	backend   *prometheus.GaugeVec
	active    *prometheus.GaugeVec
	up        *prometheus.GaugeVec
	handshake *prometheus.GaugeVec
	rx, tx    *peerBytes
	endpoint  *prometheus.GaugeVec
	switches  *prometheus.CounterVec
}

// NewMetrics registers the tunnel's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	hub := []string{"hub"}
	m := &Metrics{
		backend:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gate_vpn_backend_info", Help: "1 for the WireGuard implementation in use (kernel or userspace)."}, []string{"backend"}),
		active:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gate_vpn_hub_active", Help: "1 for the hub the tunnel routes through, 0 for the others."}, hub),
		up:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gate_vpn_hub_up", Help: "1 when the hub was heard within vpn.failover_after."}, hub),
		handshake: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gate_vpn_handshake_age_seconds", Help: "Seconds since the hub's last handshake (absent before the first)."}, hub),
		rx:        newPeerBytes("gate_vpn_receive_bytes_total", "Bytes received from the hub by its current peer (WireGuard's count: it restarts at 0 when the peer is re-added, which Prometheus reads as a counter reset)."),
		tx:        newPeerBytes("gate_vpn_transmit_bytes_total", "Bytes sent to the hub by its current peer (WireGuard's count: it restarts at 0 when the peer is re-added, which Prometheus reads as a counter reset)."),
		endpoint:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gate_vpn_endpoint_info", Help: "1 for the hub's current endpoint (IP:port)."}, []string{"hub", "endpoint"}),
		switches:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gate_vpn_hub_switches_total", Help: "Changes of the active hub (failovers and returns)."}, []string{"from", "to"}),
	}
	reg.MustRegister(m.backend, m.active, m.up, m.handshake, m.rx, m.tx, m.endpoint, m.switches)
	return m
}

func (t *Tunnel) metricsActive() {
	m := t.opt.Metrics
	if m == nil {
		return
	}
	for i, h := range t.hubs {
		v := 0.0
		if i == t.active {
			v = 1
		}
		m.active.WithLabelValues(h.cfg.Name).Set(v)
	}
}

func (t *Tunnel) metricsHub(now time.Time, h *hub) {
	m := t.opt.Metrics
	if m == nil {
		return
	}
	up := 0.0
	if h.up {
		up = 1
	}
	m.up.WithLabelValues(h.cfg.Name).Set(up)
	if !h.handshake.IsZero() {
		m.handshake.WithLabelValues(h.cfg.Name).Set(now.Sub(h.handshake).Seconds())
	}
	m.rx.set(h.cfg.Name, float64(h.rx))
	m.tx.set(h.cfg.Name, float64(h.tx))
}

// peerBytes is a per-hub byte counter whose value WireGuard keeps: it is
// exposed as a counter, set from the peer's statistics.
type peerBytes struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	v    map[string]float64
}

func newPeerBytes(name, help string) *peerBytes {
	return &peerBytes{desc: prometheus.NewDesc(name, help, []string{"hub"}, nil), v: map[string]float64{}}
}

func (p *peerBytes) set(hub string, v float64) {
	p.mu.Lock()
	p.v[hub] = v
	p.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (p *peerBytes) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect implements prometheus.Collector.
func (p *peerBytes) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for hub, v := range p.v {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.CounterValue, v, hub)
	}
}
