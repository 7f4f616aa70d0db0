package metrics

import (
	"bytes"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func text(t testing.TB, fams []Family) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteText(&b, fams); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestWriteText: what each kind of metric writes, exactly, in the order
// a scrape gives (families by name, samples by label values).
func TestWriteText(t *testing.T) {
	for _, tc := range []struct {
		name string
		fill func(r *Registry)
		want string
	}{
		{"counter", func(r *Registry) {
			c := NewCounter(Opts{Name: "gate_x_total", Help: "Xs."})
			r.MustRegister(c)
			c.Inc()
			c.Add(1.5)
			c.Add(-7) // ignored
		}, "# HELP gate_x_total Xs.\n# TYPE gate_x_total counter\ngate_x_total 2.5\n"},
		{"gauge", func(r *Registry) {
			g := NewGauge(Opts{Name: "gate_g", Help: "A \\ help\nof two lines."})
			r.MustRegister(g)
			g.Set(3)
			g.Dec()
			g.Add(-0.5)
		}, "# HELP gate_g A \\\\ help\\nof two lines.\n# TYPE gate_g gauge\ngate_g 1.5\n"},
		{"vector sorted, empty vector left out", func(r *Registry) {
			v := NewGaugeVec(Opts{Name: "gate_v", Help: "V."}, []string{"a", "b"})
			e := NewCounterVec(Opts{Name: "gate_e_total", Help: "E."}, []string{"a"})
			r.MustRegister(v, e)
			v.WithLabelValues("z", `q"\`+"\n").Set(1)
			v.WithLabelValues("a", "2").Set(1e6)
			v.WithLabelValues("a", "1").Set(math.Inf(-1))
		}, "# HELP gate_v V.\n# TYPE gate_v gauge\n" +
			"gate_v{a=\"a\",b=\"1\"} -Inf\ngate_v{a=\"a\",b=\"2\"} 1e+06\ngate_v{a=\"z\",b=\"q\\\"\\\\\\n\"} 1\n"},
		{"families by name; functions read at the scrape", func(r *Registry) {
			n := 0.0
			r.MustRegister(NewGaugeFunc(Opts{Name: "gate_b", Help: "B."}, func() float64 { n++; return n }),
				NewCounterFunc(Opts{Name: "gate_a_total", Help: "A."}, func() float64 { return math.NaN() }))
		}, "# HELP gate_a_total A.\n# TYPE gate_a_total counter\ngate_a_total NaN\n# HELP gate_b B.\n# TYPE gate_b gauge\ngate_b 3\n"}, // read at Register and at each Gather
		{"reset and partial delete", func(r *Registry) {
			v := NewGaugeVec(Opts{Name: "gate_v", Help: "V."}, []string{"hub", "endpoint"})
			w := NewCounterVec(Opts{Name: "gate_w_total", Help: "W."}, []string{"k"})
			r.MustRegister(v, w)
			v.WithLabelValues("h1", "e1").Set(1)
			v.WithLabelValues("h1", "e2").Set(1)
			v.WithLabelValues("h2", "e1").Set(1)
			if n := v.DeletePartialMatch(map[string]string{"hub": "h1"}); n != 2 {
				t.Errorf("DeletePartialMatch removed %d, want 2", n)
			}
			if n := v.DeletePartialMatch(map[string]string{"nolabel": "h2"}); n != 0 {
				t.Errorf("DeletePartialMatch of an unknown label removed %d, want 0", n)
			}
			w.WithLabelValues("x").Inc()
			w.Reset()
			w.WithLabelValues("y").Inc()
		}, "# HELP gate_v V.\n# TYPE gate_v gauge\ngate_v{hub=\"h2\",endpoint=\"e1\"} 1\n# HELP gate_w_total W.\n# TYPE gate_w_total counter\ngate_w_total{k=\"y\"} 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			tc.fill(r)
			r.Gather() // functions are read at each scrape
			if got := text(t, r.Gather()); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	r := NewRegistry()
	if err := r.Register(NewGauge(Opts{Name: "gate_a"})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Collector
		want string // in the error
	}{
		{"same name", NewCounterVec(Opts{Name: "gate_a"}, []string{"x"}), "registered twice"},
		{"invalid name", NewGauge(Opts{Name: "gate-b"}), "invalid metric name"},
		{"empty name", NewGauge(Opts{}), "invalid metric name"},
		{"twice in one collector", CollectorFunc(func() []Family { return []Family{{Name: "gate_c"}, {Name: "gate_c"}} }), "registered twice"},
	} {
		if err := r.Register(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// A refused collector registered none of its names.
	if err := r.Register(NewGauge(Opts{Name: "gate_c"})); err != nil {
		t.Errorf("gate_c after a refused collector: %v", err)
	}
}

func TestHandler(t *testing.T) {
	r := NewRegistry()
	g := NewGauge(Opts{Name: "gate_g", Help: "G."})
	r.MustRegister(g)
	g.Set(7)
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip, zstd") // as Go's HTTP client offers
	r.Handler().ServeHTTP(w, req)
	if ct := w.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type %q", ct)
	}
	if w.Header().Get("Content-Encoding") != "" {
		t.Error("compressed")
	}
	if !strings.HasSuffix(w.Body.String(), "\ngate_g 7\n") {
		t.Errorf("body %q", w.Body.String())
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Family // nil: an error
	}{
		{"families, types, labels, timestamps", "# HELP a_total The As.\n# TYPE a_total counter\na_total{x=\"1\",y=\"a\\\"b\\\\c\\nd\"} 3 1700000000000\n\n# a comment\nb -Inf\nc{} 4.5e-3\n",
			[]Family{
				{Name: "a_total", Help: "The As.", Type: TypeCounter, Samples: []Sample{{Labels: []Label{{"x", "1"}, {"y", "a\"b\\c\nd"}}, Value: 3}}},
				{Name: "b", Type: TypeUntyped, Samples: []Sample{{Value: math.Inf(-1)}}},
				{Name: "c", Type: TypeUntyped, Samples: []Sample{{Value: 4.5e-3}}},
			}},
		{"a summary's samples", "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\nu_sum 4\n",
			[]Family{
				{Name: "s", Type: TypeSummary, Samples: []Sample{{Labels: []Label{{"quantile", "0.5"}}, Value: 1}, {Suffix: "_sum", Value: 2}, {Suffix: "_count", Value: 3}}},
				{Name: "u_sum", Type: TypeUntyped, Samples: []Sample{{Value: 4}}},
			}},
		{"samples of a name gathered", "a 1\nb 2\na{k=\"v\"} 3\n",
			[]Family{
				{Name: "a", Type: TypeUntyped, Samples: []Sample{{Value: 1}, {Labels: []Label{{"k", "v"}}, Value: 3}}},
				{Name: "b", Type: TypeUntyped, Samples: []Sample{{Value: 2}}},
			}},
		{"no value", "a\n", nil},
		{"bad value", "a one\n", nil},
		{"bad timestamp", "a 1 now\n", nil},
		{"three fields", "a 1 2 3\n", nil},
		{"bad name", "1a 1\n", nil},
		{"label unquoted", "a{x=1} 1\n", nil},
		{"label unclosed", "a{x=\"1} 1\n", nil},
		{"label twice", "a{x=\"1\",x=\"2\"} 1\n", nil},
		{"bad label name", "a{x:y=\"1\"} 1\n", nil},
		{"bad escape", "a{x=\"\\t\"} 1\n", nil},
		{"labels not closed", "a{x=\"1\" 1\n", nil},
		{"unknown type", "# TYPE a timer\n", nil},
		{"type twice", "# TYPE a gauge\n# TYPE a counter\n", nil},
		{"type after samples", "a 1\n# TYPE a gauge\n", nil},
		{"bad help name", "# HELP a-b x\n", nil},
	} {
		got, err := Parse(strings.NewReader(tc.in))
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: parsed %+v, want an error", tc.name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.EqualFunc(got, tc.want, equalFamily) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func equalFamily(a, b Family) bool {
	return a.Name == b.Name && a.Help == b.Help && a.Type == b.Type && slices.EqualFunc(a.Samples, b.Samples, func(x, y Sample) bool {
		return x.Suffix == y.Suffix && slices.Equal(x.Labels, y.Labels) && (x.Value == y.Value || math.IsNaN(x.Value) && math.IsNaN(y.Value))
	})
}

// TestParseWritten: what a registry writes, the runtime's and the
// process's families included, reads back the same.
func TestParseWritten(t *testing.T) {
	r := NewRegistry()
	r.MustRegister(GoCollector(), ProcessCollector())
	v := NewGaugeVec(Opts{Name: "gate_v", Help: "V \\ \"quoted\"\nsecond line."}, []string{"k"})
	r.MustRegister(v)
	v.WithLabelValues("a\"\\\n}{,=").Set(-0.125)
	fams := r.Gather()
	got, err := Parse(strings.NewReader(text(t, fams)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, fams, equalFamily) {
		t.Errorf("read back\n%+v\nwritten\n%+v", got, fams)
	}
}

// FuzzParse: whatever Parse accepts, written again reads back the same
// families (those with samples), and every name read is valid.
func FuzzParse(f *testing.F) {
	f.Add("# HELP a_total The As.\n# TYPE a_total counter\na_total{x=\"1\",y=\"a\\\"b\"} 3 1700000000000\nb -Inf\n")
	f.Add("# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n")
	f.Add("gate_ups_status{flag=\"OB\"} 1\ngate_ups_battery_charge_percent NaN\n")
	f.Fuzz(func(t *testing.T, in string) {
		fams, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, fam := range fams {
			if !validName(fam.Name) {
				t.Fatalf("invalid name %q read", fam.Name)
			}
		}
		var b bytes.Buffer
		if err := WriteText(&b, fams); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(&b)
		if err != nil {
			t.Fatalf("%v, reading back\n%s", err, b.String())
		}
		withSamples := slices.DeleteFunc(slices.Clone(fams), func(f Family) bool { return len(f.Samples) == 0 })
		if !slices.EqualFunc(again, withSamples, equalFamily) {
			t.Fatalf("read back\n%+v\nwas\n%+v", again, withSamples)
		}
	})
}

// TestProcessCollector: the process's metrics match what /proc says of
// it, and a /proc that cannot be read leaves them out instead of failing.
func TestProcessCollector(t *testing.T) {
	got := map[string]float64{}
	for _, f := range ProcessCollector().Collect() {
		for _, s := range f.Samples {
			got[f.Name] = s.Value
		}
	}
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := strconv.ParseFloat(strings.Fields(string(statm))[1], 64)
	rss := pages * float64(os.Getpagesize())
	if r := got["process_resident_memory_bytes"]; r < rss/2 || r > rss*2 {
		t.Errorf("process_resident_memory_bytes %v, /proc/self/statm says %v", r, rss)
	}
	if n := got["process_open_fds"]; n < 3 {
		t.Errorf("process_open_fds %v", n)
	}
	if n := got["process_max_fds"]; n < got["process_open_fds"] {
		t.Errorf("process_max_fds %v", n)
	}
	if s := got["process_start_time_seconds"]; s < 1.5e9 {
		t.Errorf("process_start_time_seconds %v", s)
	}
	if _, ok := got["process_cpu_seconds_total"]; !ok {
		t.Error("no process_cpu_seconds_total")
	}
	for _, f := range newProcessCollector(t.TempDir()).Collect() {
		if len(f.Samples) > 0 {
			t.Errorf("%s from an empty /proc", f.Name)
		}
	}
}

func TestParseStat(t *testing.T) {
	tail := " S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15 16 17 18 333 4096 25 27 28\n"
	for _, tc := range []struct {
		name, in string
		want     stat
		ok       bool
	}{
		{"plain", "42 (gated)" + tail, stat{utime: 111, stime: 222, starttime: 333, vsize: 4096, rss: 25}, true},
		{"a command name with ) and spaces", "42 (a) b (c)" + tail, stat{utime: 111, stime: 222, starttime: 333, vsize: 4096, rss: 25}, true},
		{"no command name", "42 gated S 1", stat{}, false},
		{"cut short", "42 (gated) S 1 2 3", stat{}, false},
		{"not a number", "42 (gated) S 1 2 3 4 5 6 7 8 9 10 x 222 13 14 15 16 17 18 333 4096 25", stat{}, false},
	} {
		got, err := parseStat([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v (ok %v)", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

func TestGoCollector(t *testing.T) {
	got := map[string]Family{}
	for _, f := range GoCollector().Collect() {
		got[f.Name] = f
	}
	for _, name := range []string{"go_goroutines", "go_threads", "go_memstats_heap_inuse_bytes", "go_memstats_sys_bytes", "go_gc_gogc_percent"} {
		if f := got[name]; len(f.Samples) != 1 || f.Samples[0].Value <= 0 {
			t.Errorf("%s: %+v", name, f)
		}
	}
	if s := got["go_info"].Samples; len(s) != 1 || !strings.HasPrefix(s[0].Label("version"), "go") {
		t.Errorf("go_info: %+v", s)
	}
	if n := len(got["go_gc_duration_seconds"].Samples); n != 7 {
		t.Errorf("go_gc_duration_seconds: %d samples, want 5 quantiles, _sum and _count", n)
	}
}

// BenchmarkScrape: one scrape of a daemon-sized registry, written.
func BenchmarkScrape(b *testing.B) {
	r := NewRegistry()
	r.MustRegister(GoCollector(), ProcessCollector())
	v := NewCounterVec(Opts{Name: "gate_v_total", Help: "V."}, []string{"k"})
	r.MustRegister(v)
	for i := range 20 {
		v.WithLabelValues(strconv.Itoa(i)).Inc()
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteText(io.Discard, r.Gather()); err != nil {
			b.Fatal(err)
		}
	}
}
