// Package history keeps the status page's graphs: a few numeric series
// (battery charge, UPS load, tunnel handshake age) sampled now and then,
// held in memory in fixed-size rings, one per resolution ("the last hours"
// at the sample interval, "the last days" as averages over a longer step),
// and saved to /perm now and then so the graphs survive a reboot.
//
// Memory and file size are bounded by the tiers' capacities whatever the
// uptime: a ring overwrites its oldest point.
package history

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"gate/internal/atomicfile"
)

// Tier is one resolution: points Step apart, at most Cap of them.
type Tier struct {
	Name string        // e.g. "hours", "days"
	Step time.Duration // a point averages the samples of one Step
	Cap  int           // points kept
}

// DefaultTiers are the page's two graphs' resolutions: one point a minute
// for a day, one every 15 minutes for a week.
var DefaultTiers = []Tier{
	{Name: "hours", Step: time.Minute, Cap: 24 * 60},
	{Name: "days", Step: 15 * time.Minute, Cap: 7 * 24 * 4},
}

// Point is one point of every series; a missing value is NaN.
type Point struct {
	T int64     // unix seconds, the start of the point's step
	V []float32 // one per series, in the History's order
}

type ring struct {
	Tier  Tier
	Pts   []Point // ring storage, len ≤ Cap
	Next  int     // where the next point goes once full
	acc   []float64
	accN  []int
	accAt int64 // the step being accumulated (unix seconds), 0: none
}

// History holds the rings.
type History struct {
	mu     sync.Mutex
	series []string
	rings  []*ring
}

// New returns an empty history of the named series at the given tiers.
func New(series []string, tiers ...Tier) *History {
	h := &History{series: append([]string(nil), series...)}
	for _, t := range tiers {
		if t.Cap < 1 || t.Step <= 0 {
			panic(fmt.Sprintf("history: tier %q: capacity and step must be positive", t.Name))
		}
		h.rings = append(h.rings, &ring{Tier: t})
	}
	return h
}

// Series returns the series' names.
func (h *History) Series() []string { return append([]string(nil), h.series...) }

// Add records one sample at t; vals follow the series' order (NaN: not
// known). Each tier averages the samples of its step into one point,
// written when a sample of a later step arrives.
func (h *History) Add(t time.Time, vals []float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rings {
		step := int64(r.Tier.Step / time.Second)
		if step < 1 {
			step = 1
		}
		at := t.Unix() - t.Unix()%step
		if r.accAt != 0 && at != r.accAt {
			r.flush(len(h.series))
		}
		if r.accAt == 0 {
			r.accAt = at
			r.acc = make([]float64, len(h.series))
			r.accN = make([]int, len(h.series))
		}
		for i := range h.series {
			if i < len(vals) && !math.IsNaN(vals[i]) {
				r.acc[i] += vals[i]
				r.accN[i]++
			}
		}
	}
}

func (r *ring) flush(n int) {
	p := Point{T: r.accAt, V: make([]float32, n)}
	for i := range p.V {
		p.V[i] = float32(math.NaN())
		if r.accN[i] > 0 {
			p.V[i] = float32(r.acc[i] / float64(r.accN[i]))
		}
	}
	r.push(p)
	r.accAt = 0
}

func (r *ring) push(p Point) {
	if len(r.Pts) < r.Tier.Cap {
		r.Pts = append(r.Pts, p)
		return
	}
	r.Pts[r.Next] = p
	r.Next = (r.Next + 1) % r.Tier.Cap
}

// ordered returns the points oldest first, plus the step in progress.
func (r *ring) ordered(n int) []Point {
	out := make([]Point, 0, len(r.Pts)+1)
	out = append(out, r.Pts[r.Next:]...)
	out = append(out, r.Pts[:r.Next]...)
	if r.accAt != 0 {
		cur := *r
		cur.Pts, cur.Next = nil, 0
		cur.Tier.Cap = 1
		cur.acc = append([]float64(nil), r.acc...)
		cur.accN = append([]int(nil), r.accN...)
		cur.flush(n)
		out = append(out, cur.Pts[0])
	}
	return out
}

// XY is one point of one series.
type XY struct {
	T time.Time
	V float64
}

// Points returns one series of one tier, oldest first, without the
// missing values; ok is false for an unknown tier or series.
func (h *History) Points(tier, series string) (pts []XY, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	si := -1
	for i, s := range h.series {
		if s == series {
			si = i
		}
	}
	if si < 0 {
		return nil, false
	}
	for _, r := range h.rings {
		if r.Tier.Name != tier {
			continue
		}
		for _, p := range r.ordered(len(h.series)) {
			if si < len(p.V) && !math.IsNaN(float64(p.V[si])) {
				pts = append(pts, XY{T: time.Unix(p.T, 0), V: float64(p.V[si])})
			}
		}
		return pts, true
	}
	return nil, false
}

// Len returns how many points a tier holds (with the one in progress).
func (h *History) Len(tier string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rings {
		if r.Tier.Name == tier {
			n := len(r.Pts)
			if r.accAt != 0 {
				n++
			}
			return n
		}
	}
	return 0
}

// file is the saved form.
type file struct {
	Version int
	Series  []string
	Tiers   []savedTier
}

type savedTier struct {
	Name string
	Step time.Duration
	Pts  []Point // oldest first, the step in progress included
}

// Marshal encodes the history (the step in progress is saved as a point).
func (h *History) Marshal() ([]byte, error) {
	h.mu.Lock()
	f := file{Version: 1, Series: h.series}
	for _, r := range h.rings {
		f.Tiers = append(f.Tiers, savedTier{Name: r.Tier.Name, Step: r.Tier.Step, Pts: r.ordered(len(h.series))})
	}
	h.mu.Unlock()
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(f); err != nil {
		return nil, fmt.Errorf("history: encode: %w", err)
	}
	return b.Bytes(), nil
}

// Unmarshal replaces the history's points with saved ones. Series and
// tiers are matched by name (a series or tier no longer kept is dropped,
// a new one starts empty); each tier keeps at most its capacity, newest.
func (h *History) Unmarshal(b []byte) error {
	var f file
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&f); err != nil {
		return fmt.Errorf("history: decode: %w", err)
	}
	if f.Version != 1 {
		return fmt.Errorf("history: unknown file version %d", f.Version)
	}
	idx := make([]int, len(h.series)) // our series i is the file's idx[i]
	for i, s := range h.series {
		idx[i] = -1
		for j, fs := range f.Series {
			if fs == s {
				idx[i] = j
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rings {
		r.Pts, r.Next, r.accAt = nil, 0, 0
		for _, st := range f.Tiers {
			if st.Name != r.Tier.Name || st.Step != r.Tier.Step {
				continue
			}
			// The newest point was the step in progress: it goes on
			// accumulating (as one sample).
			pts := st.Pts
			var last *Point
			if len(pts) > 0 {
				last, pts = &pts[len(pts)-1], pts[:len(pts)-1]
			}
			if len(pts) > r.Tier.Cap {
				pts = pts[len(pts)-r.Tier.Cap:]
			}
			for _, p := range pts {
				r.push(pick(p, idx))
			}
			if last != nil {
				q := pick(*last, idx)
				r.accAt, r.acc, r.accN = q.T, make([]float64, len(idx)), make([]int, len(idx))
				for i, v := range q.V {
					if !math.IsNaN(float64(v)) {
						r.acc[i], r.accN[i] = float64(v), 1
					}
				}
			}
		}
	}
	return nil
}

// pick maps a saved point's values to our series (idx[i]: the file's
// index of our series i, -1 when the file has none).
func pick(p Point, idx []int) Point {
	q := Point{T: p.T, V: make([]float32, len(idx))}
	for i, j := range idx {
		q.V[i] = float32(math.NaN())
		if j >= 0 && j < len(p.V) {
			q.V[i] = p.V[j]
		}
	}
	return q
}

// Save writes the history to path atomically (mode 0600).
func (h *History) Save(path string) error {
	b, err := h.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("history: save %s: %w", path, err)
	}
	return nil
}

// Load reads a history saved at path; a missing file is no error.
func (h *History) Load(path string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("history: load: %w", err)
	}
	if err := h.Unmarshal(b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
