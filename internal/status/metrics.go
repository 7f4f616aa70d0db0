package status

import (
	"context"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one daemon's scraped /metrics.
type Metrics map[string]*dto.MetricFamily

// Scrape reads a Prometheus text endpoint (at most 4 MiB).
func Scrape(ctx context.Context, c *http.Client, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s", url, resp.Status)
	}
	return ParseMetrics(io.LimitReader(resp.Body, 4<<20))
}

// ParseMetrics parses the Prometheus text format.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return Metrics(m), nil
}

// Series is one series of a family.
type Series struct {
	Labels map[string]string
	Value  float64
}

// All returns every series of the family name.
func (m Metrics) All(name string) []Series {
	f := m[name]
	if f == nil {
		return nil
	}
	var out []Series
	for _, s := range f.Metric {
		ls := map[string]string{}
		for _, l := range s.Label {
			ls[l.GetName()] = l.GetValue()
		}
		var v float64
		switch {
		case s.Gauge != nil:
			v = s.Gauge.GetValue()
		case s.Counter != nil:
			v = s.Counter.GetValue()
		case s.Untyped != nil:
			v = s.Untyped.GetValue()
		default:
			continue
		}
		out = append(out, Series{Labels: ls, Value: v})
	}
	return out
}

// Get returns the value of the series of name whose labels include the
// given label=value pairs.
func (m Metrics) Get(name string, labels ...string) (float64, bool) {
next:
	for _, s := range m.All(name) {
		for i := 0; i+1 < len(labels); i += 2 {
			if s.Labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.Value, true
	}
	return 0, false
}

// Sum adds the family's series (0 when absent).
func (m Metrics) Sum(name string) float64 {
	var t float64
	for _, s := range m.All(name) {
		t += s.Value
	}
	return t
}
