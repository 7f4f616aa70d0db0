package wgtunnel

import (
	"sync"
	"time"

	"gate/internal/metrics"
)

// Metrics is the tunnel's status for Prometheus.
type Metrics struct {
	backend   *metrics.GaugeVec
	active    *metrics.GaugeVec
	up        *metrics.GaugeVec
	handshake *metrics.GaugeVec
	rx, tx    *peerBytes
	endpoint  *metrics.GaugeVec
	switches  *metrics.CounterVec
}

// NewMetrics registers the tunnel's metrics on reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	hub := []string{"hub"}
	m := &Metrics{
		backend:   metrics.NewGaugeVec(metrics.Opts{Name: "gate_vpn_backend_info", Help: "1 for the WireGuard implementation in use (kernel or userspace)."}, []string{"backend"}),
		active:    metrics.NewGaugeVec(metrics.Opts{Name: "gate_vpn_hub_active", Help: "1 for the hub the tunnel routes through, 0 for the others."}, hub),
		up:        metrics.NewGaugeVec(metrics.Opts{Name: "gate_vpn_hub_up", Help: "1 when the hub was heard within vpn.failover_after."}, hub),
		handshake: metrics.NewGaugeVec(metrics.Opts{Name: "gate_vpn_handshake_age_seconds", Help: "Seconds since the hub's last handshake (absent before the first)."}, hub),
		rx:        newPeerBytes("gate_vpn_receive_bytes_total", "Bytes received from the hub by its current peer (WireGuard's count: it restarts at 0 when the peer is re-added, which Prometheus reads as a counter reset)."),
		tx:        newPeerBytes("gate_vpn_transmit_bytes_total", "Bytes sent to the hub by its current peer (WireGuard's count: it restarts at 0 when the peer is re-added, which Prometheus reads as a counter reset)."),
		endpoint:  metrics.NewGaugeVec(metrics.Opts{Name: "gate_vpn_endpoint_info", Help: "1 for the hub's current endpoint (IP:port)."}, []string{"hub", "endpoint"}),
		switches:  metrics.NewCounterVec(metrics.Opts{Name: "gate_vpn_hub_switches_total", Help: "Changes of the active hub (failovers and returns)."}, []string{"from", "to"}),
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
	opts metrics.Opts
	mu   sync.Mutex
	v    map[string]float64
}

func newPeerBytes(name, help string) *peerBytes {
	return &peerBytes{opts: metrics.Opts{Name: name, Help: help}, v: map[string]float64{}}
}

func (p *peerBytes) set(hub string, v float64) {
	p.mu.Lock()
	p.v[hub] = v
	p.mu.Unlock()
}

// Collect implements metrics.Collector.
func (p *peerBytes) Collect() []metrics.Family {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := metrics.Family{Name: p.opts.Name, Help: p.opts.Help, Type: metrics.TypeCounter}
	for hub, v := range p.v {
		f.Samples = append(f.Samples, metrics.Sample{Labels: []metrics.Label{{Name: "hub", Value: hub}}, Value: v})
	}
	return []metrics.Family{f}
}
