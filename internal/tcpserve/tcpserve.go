// Package tcpserve is the accept loop the gate's TCP servers share: one
// goroutine per connection, the listener closed when the context is done,
// each connection closed when its handler returns or the context is done,
// and Serve returning only once every handler has.
package tcpserve

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Serve accepts connections on ln and runs handle for each until ctx is
// done; it returns nil then, or the listener's error.
func Serve(ctx context.Context, ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			release := context.AfterFunc(ctx, func() { c.Close() })
			defer func() { release(); c.Close() }()
			handle(ctx, c)
		}()
	}
}
