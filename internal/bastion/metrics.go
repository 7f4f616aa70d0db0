package bastion

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the bastion's Prometheus metrics.
type Metrics struct {
	Connections  *prometheus.CounterVec // by result: accepted, rejected, banned
	AuthFailures *prometheus.CounterVec // by method
	Bans         prometheus.Counter
	Channels     *prometheus.CounterVec // by result: opened, refused, failed
	Bytes        *prometheus.CounterVec // by direction
	Open         prometheus.Gauge       // channels open now
}

// NewMetrics makes the metrics (register them with Register).
func NewMetrics() *Metrics {
	return &Metrics{
		Connections:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gate_bastion_connections_total", Help: "SSH connections by result."}, []string{"result"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gate_bastion_auth_failures_total", Help: "Failed authentication attempts by method."}, []string{"method"}),
		Bans:         prometheus.NewCounter(prometheus.CounterOpts{Name: "gate_bastion_bans_total", Help: "Sources banned after repeated failures."}),
		Channels:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gate_bastion_channels_total", Help: "Channels by result."}, []string{"result"}),
		Bytes:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gate_bastion_bytes_total", Help: "Bytes forwarded by direction."}, []string{"direction"}),
		Open:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "gate_bastion_channels_open", Help: "Forwarding channels open now."}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) {
	r.MustRegister(m.Connections, m.AuthFailures, m.Bans, m.Channels, m.Bytes, m.Open)
}
