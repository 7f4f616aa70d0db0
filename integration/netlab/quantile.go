package netlab

import (
	"math"
	"slices"
)

// Quantile is the q-quantile (0 < q ≤ 1) of xs by nearest rank: the
// smallest value with at least q of the values at or below it (with ten
// values, p95 is the largest).
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
