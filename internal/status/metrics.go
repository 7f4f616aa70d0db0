package status

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"gate/internal/metrics"
)

// Metrics is one daemon's scraped /metrics, by family name.
type Metrics map[string]metrics.Family

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

// ParseMetrics parses the Prometheus text format (see metrics.Parse).
func ParseMetrics(r io.Reader) (Metrics, error) {
	fams, err := metrics.Parse(r)
	if err != nil {
		return nil, err
	}
	m := Metrics{}
	for _, f := range fams {
		m[f.Name] = f
	}
	return m, nil
}

// Series is one series of a family.
type Series struct {
	Labels map[string]string
	Value  float64
}

// All returns every series of the family name, a counter, gauge or
// untyped one (a summary's or histogram's are not series of one value).
func (m Metrics) All(name string) []Series {
	f := m[name]
	switch f.Type {
	case metrics.TypeCounter, metrics.TypeGauge, metrics.TypeUntyped:
	default:
		return nil
	}
	var out []Series
	for _, s := range f.Samples {
		ls := map[string]string{}
		for _, l := range s.Labels {
			ls[l.Name] = l.Value
		}
		out = append(out, Series{Labels: ls, Value: s.Value})
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
