package metrics

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The peer for the text format is Prometheus' own code (client_golang and
// expfmt, which the Prometheus server's scrapes use): the daemons no
// longer link it, the tests still read and write with it.

// peerFamilies gathers a client_golang registry.
func peerFamilies(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// sameAsPeer compares what we read or wrote with what the peer did.
func sameAsPeer(t *testing.T, ours []Family, peer []*dto.MetricFamily) {
	t.Helper()
	byName := map[string]Family{}
	for _, f := range ours {
		byName[f.Name] = f
	}
	for _, mf := range peer {
		f, ok := byName[mf.GetName()]
		if !ok {
			t.Errorf("%s: missing", mf.GetName())
			continue
		}
		delete(byName, mf.GetName())
		if want := strings.ToLower(mf.GetType().String()); string(f.Type) != want {
			t.Errorf("%s: type %s, the peer's %s", f.Name, f.Type, want)
		}
		if f.Help != mf.GetHelp() {
			t.Errorf("%s: help %q, the peer's %q", f.Name, f.Help, mf.GetHelp())
		}
		var want []Sample
		for _, m := range mf.GetMetric() {
			var ls []Label
			for _, l := range m.GetLabel() {
				ls = append(ls, Label{l.GetName(), l.GetValue()})
			}
			switch {
			case m.Counter != nil:
				want = append(want, Sample{Labels: ls, Value: m.GetCounter().GetValue()})
			case m.Gauge != nil:
				want = append(want, Sample{Labels: ls, Value: m.GetGauge().GetValue()})
			case m.Untyped != nil:
				want = append(want, Sample{Labels: ls, Value: m.GetUntyped().GetValue()})
			case m.Summary != nil:
				for _, q := range m.GetSummary().GetQuantile() {
					want = append(want, Sample{Labels: append(slices.Clone(ls), Label{"quantile", model.FloatString(q.GetQuantile()).String()}), Value: q.GetValue()})
				}
				want = append(want, Sample{Suffix: "_sum", Labels: ls, Value: m.GetSummary().GetSampleSum()},
					Sample{Suffix: "_count", Labels: ls, Value: float64(m.GetSummary().GetSampleCount())})
			}
		}
		if !equalFamily(Family{Name: f.Name, Help: f.Help, Type: f.Type, Samples: want}, f) {
			t.Errorf("%s:\nours     %+v\nthe peer %+v", f.Name, f.Samples, want)
		}
	}
	for n := range byName {
		t.Errorf("%s: not the peer's", n)
	}
}

// TestParsePeer: what client_golang writes, Parse reads the same.
func TestParsePeer(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gate_v_total", Help: "V \\ \"q\"\nline."}, []string{"a", "b"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gate_g", Help: "G."})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "gate_s_seconds", Help: "S.", Objectives: map[float64]float64{0.5: 0.05}})
	reg.MustRegister(v, g, s, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	v.WithLabelValues("x\"\\\n}", "").Add(3)
	v.WithLabelValues("a", "1").Inc()
	g.Set(math.Inf(1))
	s.Observe(0.25)
	mfs := peerFamilies(t, reg)
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	ours, err := Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	sameAsPeer(t, ours, mfs)
}

// TestWritePeer: what a Registry writes, the peer's parser reads the
// same, the runtime's and process's families included.
func TestWritePeer(t *testing.T) {
	r := NewRegistry()
	v := NewGaugeVec(Opts{Name: "gate_v", Help: "V \\ \"q\"\nline."}, []string{"a", "b"})
	c := NewCounter(Opts{Name: "gate_c_total", Help: "C."})
	r.MustRegister(v, c, GoCollector(), ProcessCollector())
	v.WithLabelValues("x\"\\\n}", "").Set(-1.5e-7)
	v.WithLabelValues("a", "1").Set(math.NaN())
	c.Add(1e21)
	ours := r.Gather()
	var b bytes.Buffer
	if err := WriteText(&b, ours); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("the peer cannot read what we wrote: %v\n%s", err, b.String())
	}
	var peer []*dto.MetricFamily
	for _, mf := range byName {
		peer = append(peer, mf)
	}
	sameAsPeer(t, ours, peer)
}

// TestRuntimeNamesPeer: GoCollector and ProcessCollector export the
// client library's names, with its types (the help texts are ours).
func TestRuntimeNamesPeer(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	peer := map[string]*dto.MetricFamily{}
	for _, mf := range peerFamilies(t, reg) {
		peer[mf.GetName()] = mf
	}
	for _, f := range append(GoCollector().Collect(), ProcessCollector().Collect()...) {
		mf, ok := peer[f.Name]
		if !ok {
			t.Errorf("%s: not a name client_golang exports", f.Name)
			continue
		}
		if want := strings.ToLower(mf.GetType().String()); string(f.Type) != want {
			t.Errorf("%s: a %s, client_golang's a %s", f.Name, f.Type, want)
		}
	}
}
