package tailnet

import (
	"context"
	"io"
	"net"
	"time"

	"gate/internal/tcpserve"
)

// Forward relays each connection of ln to target (a local address), e.g.
// a daemon's /metrics, until ctx is done.
func Forward(ctx context.Context, ln net.Listener, target string) error {
	return tcpserve.Serve(ctx, ln, func(ctx context.Context, c net.Conn) { relay(ctx, c, target) })
}

// relay connects c to target (dialled from the gate's own network stack)
// until either side closes; it closes c.
func relay(ctx context.Context, c net.Conn, target string) error {
	defer c.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return err
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	io.Copy(c, up)
	c.Close()
	<-done
	return nil
}
