package hostprobe

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

func TestAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := ln.Addr().(*net.TCPAddr).Port
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	defer ln.Close()
	lo := netip.MustParseAddr("127.0.0.1")
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		port int
		want bool
	}{
		{"accepted", context.Background(), open, true},
		{"refused: a kernel answered", context.Background(), refused, true},
		{"no time to ask", done, open, false},
	} {
		p := &Prober{Port: tc.port}
		if got := p.tcp(tc.ctx, lo); got != tc.want {
			t.Errorf("%s: tcp %v, want %v", tc.name, got, tc.want)
		}
		if tc.want && !p.Answers(tc.ctx, lo) {
			t.Errorf("%s: Answers false", tc.name)
		}
	}
}
