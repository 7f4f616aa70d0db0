package image

import (
	"strings"
	"testing"

	"gate/config"
)

// TestProgramsTailnet: the multi-call binary carries tsnet (build tag
// tailnet) only for a site with a tailnet section, which also gets
// /user/tailnet.
func TestProgramsTailnet(t *testing.T) {
	c := example(t)
	for _, p := range programs(c, fixedTime) {
		if len(p.Tags) > 0 || p.Path == "/user/tailnet" {
			t.Errorf("a site without tailnet: %s built with tags %q", p.Path, p.Tags)
		}
	}
	c.Tailnet = &config.Tailnet{}
	ps := programs(c, fixedTime)
	found := false
	for _, p := range ps {
		found = found || p.Path == "/user/tailnet"
		if p.Link == "/user/gated" && strings.Join(p.Tags, ",") != "tailnet" {
			t.Errorf("%s: tags %q, want tailnet (every name of gated is one build)", p.Path, p.Tags)
		}
	}
	if !found {
		t.Error("no /user/tailnet for a site with a tailnet section")
	}
}
