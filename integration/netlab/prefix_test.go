package netlab

import "testing"

func TestValidLabPrefix(t *testing.T) {
	for p, want := range map[string]bool{
		"w3s": true, "a": true, "ab12": true,
		"": false, "abcde": false, "3ws": false, "W3s": false, "w-s": false, "w s": false,
	} {
		if got := validLabPrefix(p); got != want {
			t.Errorf("validLabPrefix(%q) = %v, want %v", p, got, want)
		}
	}
}
