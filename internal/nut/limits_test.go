package nut

import (
	"context"
	"net"
	"testing"
	"time"
)

// The server caps the connections from one source (MaxPerSource): the
// one over the cap is closed before it is answered; the others are served.
func TestServerConnectionCaps(t *testing.T) {
	s := testServer()
	s.MaxConn, s.MaxPerSource = 10, 2
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, ln)
	var held []*Client
	for i := 0; i < 3; i++ {
		c, err := Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.line("VER")
		if (err == nil) != (i < 2) {
			t.Errorf("connection %d: VER: %v", i, err)
		}
		held = append(held, c)
	}
	held[0].Close()
	// A slot freed is taken again (bounded wait: the handler must notice
	// the close).
	for i := 0; ; i++ {
		c, err := Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.line("VER")
		c.Close()
		if err == nil {
			break
		}
		if i == 50 {
			t.Fatal("a freed slot is not reused")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
