package netlab

import "testing"

func TestQuantile(t *testing.T) {
	ten := []float64{9, 1, 8, 2, 7, 3, 6, 4, 5, 10}
	for _, tc := range []struct {
		xs   []float64
		q    float64
		want float64
	}{{ten, 0.5, 5}, {ten, 0.95, 10}, {ten, 0.1, 1}, {[]float64{3}, 0.5, 3}, {[]float64{1, 2}, 0.5, 1}} {
		if got := Quantile(tc.xs, tc.q); got != tc.want {
			t.Errorf("Quantile(%v, %g) = %g, want %g", tc.xs, tc.q, got, tc.want)
		}
	}
	if ten[0] != 9 {
		t.Error("Quantile sorted its argument")
	}
}
