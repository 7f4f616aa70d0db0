package bastion

import "gate/internal/metrics"

// Metrics are the bastion's Prometheus metrics.
type Metrics struct {
	Connections  *metrics.CounterVec // by result: accepted, rejected, banned
	AuthFailures *metrics.CounterVec // by method
	Bans         *metrics.Counter
	Channels     *metrics.CounterVec // by result: opened, refused, failed
	Bytes        *metrics.CounterVec // by direction
	Open         *metrics.Gauge      // channels open now
}

// NewMetrics makes the metrics (register them with Register).
func NewMetrics() *Metrics {
	return &Metrics{
		Connections:  metrics.NewCounterVec(metrics.Opts{Name: "gate_bastion_connections_total", Help: "SSH connections by result."}, []string{"result"}),
		AuthFailures: metrics.NewCounterVec(metrics.Opts{Name: "gate_bastion_auth_failures_total", Help: "Failed authentication attempts by method."}, []string{"method"}),
		Bans:         metrics.NewCounter(metrics.Opts{Name: "gate_bastion_bans_total", Help: "Sources banned after repeated failures."}),
		Channels:     metrics.NewCounterVec(metrics.Opts{Name: "gate_bastion_channels_total", Help: "Channels by result."}, []string{"result"}),
		Bytes:        metrics.NewCounterVec(metrics.Opts{Name: "gate_bastion_bytes_total", Help: "Bytes forwarded by direction."}, []string{"direction"}),
		Open:         metrics.NewGauge(metrics.Opts{Name: "gate_bastion_channels_open", Help: "Forwarding channels open now."}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r *metrics.Registry) {
	r.MustRegister(m.Connections, m.AuthFailures, m.Bans, m.Channels, m.Bytes, m.Open)
}
