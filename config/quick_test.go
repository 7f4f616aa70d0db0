package config

import "testing"

func TestQuickExample(t *testing.T) {
	c, err := Parse("config/example.yaml", Example(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range c.Warnings() {
		t.Log(w)
	}
}
