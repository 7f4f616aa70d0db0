// Package metrics is what the daemons export on /metrics, in the
// Prometheus text format (version 0.0.4): counters and gauges, alone, by
// labels (vectors) or read from a function at each scrape; the Go
// runtime's and the process's own metrics (go_*, process_*); a Registry
// that writes them; and Parse, which reads the format back (statusd reads
// the daemons' /metrics with it).
//
// It stands in for github.com/prometheus/client_golang, whose code (with
// protocol buffers, procfs and expfmt) was an eighth of the daemons' one
// binary, mapped by every daemon, and whose scrapes made most of a
// daemon's garbage. The names, types and text are the same.
package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Type is a family's type, as the text format's # TYPE line says it.
type Type string

const (
	TypeCounter Type = "counter"
	TypeGauge   Type = "gauge"
	TypeSummary Type = "summary"
	TypeUntyped Type = "untyped"
)

// Opts names a metric and says what it means (its # HELP line).
type Opts struct {
	Name, Help string
}

// Label is one label of a sample.
type Label struct {
	Name, Value string
}

// Sample is one line of a family: its value for its labels. Suffix is
// appended to the family's name ("_sum", "_count" of a summary).
type Sample struct {
	Suffix string
	Labels []Label
	Value  float64
}

// Label returns the value of the sample's label name ("" when absent).
func (s Sample) Label(name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Family is a metric's samples, as of a scrape.
type Family struct {
	Name, Help string
	Type       Type
	Samples    []Sample
}

// Collector is anything a Registry holds: at each scrape it returns its
// families (always the same names; a family may have no samples).
type Collector interface {
	Collect() []Family
}

// CollectorFunc is a Collector written as a function.
type CollectorFunc func() []Family

// Collect calls f.
func (f CollectorFunc) Collect() []Family { return f() }

// Registry holds a daemon's collectors. The zero value is not usable: see
// NewRegistry.
type Registry struct {
	mu    sync.Mutex
	cs    []Collector
	names map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{names: map[string]bool{}}
}

// Register adds c, unless one of its families' names is invalid or
// already registered. It collects c once to learn the names.
func (r *Registry) Register(c Collector) error {
	fams := c.Collect()
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, f := range fams {
		if !validName(f.Name) {
			return fmt.Errorf("metrics: invalid metric name %q", f.Name)
		}
		if r.names[f.Name] || seen[f.Name] {
			return fmt.Errorf("metrics: %s registered twice", f.Name)
		}
		seen[f.Name] = true
	}
	for n := range seen {
		r.names[n] = true
	}
	r.cs = append(r.cs, c)
	return nil
}

// MustRegister registers each collector and panics if one cannot be: the
// daemons register theirs at start, so that is a programming error.
func (r *Registry) MustRegister(cs ...Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Gather returns every family with samples, sorted by name, the samples
// of each sorted by their labels' values (a summary's as its collector
// gave them: quantiles, _sum, _count).
func (r *Registry) Gather() []Family {
	r.mu.Lock()
	cs := slices.Clone(r.cs)
	r.mu.Unlock()
	var out []Family
	for _, c := range cs {
		for _, f := range c.Collect() {
			if len(f.Samples) > 0 {
				out = append(out, f)
			}
		}
	}
	slices.SortFunc(out, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	for _, f := range out {
		if f.Type != TypeSummary {
			slices.SortStableFunc(f.Samples, compareSamples)
		}
	}
	return out
}

func compareSamples(a, b Sample) int {
	for i := 0; i < len(a.Labels) && i < len(b.Labels); i++ {
		if c := strings.Compare(a.Labels[i].Value, b.Labels[i].Value); c != 0 {
			return c
		}
	}
	return len(a.Labels) - len(b.Labels)
}

// value is a float64 updated atomically.
type value struct{ bits atomic.Uint64 }

func (v *value) load() float64 { return math.Float64frombits(v.bits.Load()) }
func (v *value) set(x float64) { v.bits.Store(math.Float64bits(x)) }
func (v *value) add(d float64) {
	for {
		old := v.bits.Load()
		if v.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Counter counts up from 0.
type Counter struct {
	opts Opts
	v    value
}

// NewCounter returns a counter; register it to export it.
func NewCounter(o Opts) *Counter { return &Counter{opts: o} }

// Inc adds 1.
func (c *Counter) Inc() { c.v.add(1) }

// Add adds d; a negative d is ignored (a counter never goes down).
func (c *Counter) Add(d float64) {
	if d > 0 {
		c.v.add(d)
	}
}

// Value returns the count.
func (c *Counter) Value() float64 { return c.v.load() }

// Collect implements Collector.
func (c *Counter) Collect() []Family {
	return []Family{{Name: c.opts.Name, Help: c.opts.Help, Type: TypeCounter, Samples: []Sample{{Value: c.Value()}}}}
}

// Gauge is a value that goes up and down.
type Gauge struct {
	opts Opts
	v    value
}

// NewGauge returns a gauge; register it to export it.
func NewGauge(o Opts) *Gauge { return &Gauge{opts: o} }

// Set sets the gauge to x.
func (g *Gauge) Set(x float64) { g.v.set(x) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) { g.v.add(d) }

// Inc adds 1.
func (g *Gauge) Inc() { g.v.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.v.add(-1) }

// Value returns the gauge's value.
func (g *Gauge) Value() float64 { return g.v.load() }

// Collect implements Collector.
func (g *Gauge) Collect() []Family {
	return []Family{{Name: g.opts.Name, Help: g.opts.Help, Type: TypeGauge, Samples: []Sample{{Value: g.Value()}}}}
}

// vec is a family of one metric per combination of label values.
type vec[M interface{ Value() float64 }] struct {
	opts   Opts
	typ    Type
	labels []string
	new    func() M

	mu       sync.Mutex
	children map[string]child[M] // by the values joined with 0xff
}

type child[M any] struct {
	values []string
	m      M
}

// WithLabelValues returns the metric for the label values, in the order
// the vector's labels were given, creating it at 0. A wrong number of
// values is a programming error: it panics, as client_golang's does.
func (v *vec[M]) WithLabelValues(values ...string) M {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s has labels %q, given %d values", v.opts.Name, v.labels, len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.children[key]; ok {
		return c.m
	}
	c := child[M]{values: slices.Clone(values), m: v.new()}
	v.children[key] = c
	return c.m
}

// Reset removes every metric of the vector.
func (v *vec[M]) Reset() {
	v.mu.Lock()
	clear(v.children)
	v.mu.Unlock()
}

// DeletePartialMatch removes the metrics whose labels include every
// name=value of labels, and returns how many it removed.
func (v *vec[M]) DeletePartialMatch(labels map[string]string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
next:
	for k, c := range v.children {
		for name, want := range labels {
			i := slices.Index(v.labels, name)
			if i < 0 || c.values[i] != want {
				continue next
			}
		}
		delete(v.children, k)
		n++
	}
	return n
}

// Collect implements Collector.
func (v *vec[M]) Collect() []Family {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := Family{Name: v.opts.Name, Help: v.opts.Help, Type: v.typ, Samples: make([]Sample, 0, len(v.children))}
	for _, c := range v.children {
		ls := make([]Label, len(v.labels))
		for i, n := range v.labels {
			ls[i] = Label{n, c.values[i]}
		}
		f.Samples = append(f.Samples, Sample{Labels: ls, Value: c.m.Value()})
	}
	return []Family{f}
}

// CounterVec is counters by labels.
type CounterVec struct{ vec[*Counter] }

// NewCounterVec returns counters by the labels named.
func NewCounterVec(o Opts, labels []string) *CounterVec {
	return &CounterVec{vec[*Counter]{opts: o, typ: TypeCounter, labels: slices.Clone(labels), new: func() *Counter { return &Counter{} }, children: map[string]child[*Counter]{}}}
}

// GaugeVec is gauges by labels.
type GaugeVec struct{ vec[*Gauge] }

// NewGaugeVec returns gauges by the labels named.
func NewGaugeVec(o Opts, labels []string) *GaugeVec {
	return &GaugeVec{vec[*Gauge]{opts: o, typ: TypeGauge, labels: slices.Clone(labels), new: func() *Gauge { return &Gauge{} }, children: map[string]child[*Gauge]{}}}
}

// funcMetric is a metric whose value a function gives at each scrape.
type funcMetric struct {
	opts Opts
	typ  Type
	f    func() float64
}

func (m *funcMetric) Collect() []Family {
	return []Family{{Name: m.opts.Name, Help: m.opts.Help, Type: m.typ, Samples: []Sample{{Value: m.f()}}}}
}

// NewCounterFunc returns a counter whose count f gives (f must never
// return less than before).
func NewCounterFunc(o Opts, f func() float64) Collector {
	return &funcMetric{opts: o, typ: TypeCounter, f: f}
}

// NewGaugeFunc returns a gauge whose value f gives.
func NewGaugeFunc(o Opts, f func() float64) Collector {
	return &funcMetric{opts: o, typ: TypeGauge, f: f}
}
