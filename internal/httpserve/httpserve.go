// Package httpserve runs the gate's HTTP servers (/metrics of every
// daemon, bootstrapd's boot and cloud-init server) with the limits a
// slow or hostile client meets: a deadline on the request's header and on
// the whole request, a bound on the header and on the body, an idle
// keep-alive timeout, connections capped overall and per source
// (tcpserve), and a response that makes no progress for a while ends its
// connection — a deadline on progress rather than on the whole response,
// so a multi-gigabyte image still downloads while a client that stops
// reading is let go.
package httpserve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"gate/internal/tcpserve"
)

// Options are the limits; a zero field takes its default.
type Options struct {
	ReadHeaderTimeout time.Duration // the request line and header: 10s
	ReadTimeout       time.Duration // the whole request, body included: 30s
	// WriteIdle ends a connection whose response made no progress for
	// this long (the client stopped reading): 30s.
	WriteIdle      time.Duration
	IdleTimeout    time.Duration // between keep-alive requests: 60s
	MaxHeaderBytes int           // 8 KiB (net/http answers 431 above it)
	MaxBodyBytes   int64         // 1 MiB (reading more fails: MaxBytesReader)
	// MaxConns and PerSource cap the connections (tcpserve defaults).
	MaxConns, PerSource int
	// Allow, when set, says which sources are served (tcpserve.Server.Allow).
	Allow func(netip.Addr) bool
	Log   *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 10*time.Second)
	def(&o.ReadTimeout, 30*time.Second)
	def(&o.WriteIdle, 30*time.Second)
	def(&o.IdleTimeout, 60*time.Second)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 8 << 10
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Serve serves h on ln with the limits of o until ctx is done, then shuts
// down (in-flight requests get 2 s) and returns nil; otherwise it returns
// the server's error.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, o Options) error {
	o = o.withDefaults()
	caps := &tcpserve.Server{Limit: tcpserve.Limit{Max: o.MaxConns, PerSource: o.PerSource}, Allow: o.Allow, Log: o.Log}
	srv := &http.Server{
		Handler:           Limit(h, o),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	})
	defer stop()
	err := srv.Serve(caps.Listener(ln))
	if errors.Is(err, http.ErrServerClosed) {
		<-ctx.Done() // Shutdown is under way: Serve returned at its start
		return nil
	}
	return err
}

// Limit wraps h with the body bound and the write-progress deadline of o
// (Serve does it; exported for servers that are run some other way).
func Limit(h http.Handler, o Options) http.Handler {
	o = o.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, o.MaxBodyBytes)
		pw := &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: o.WriteIdle}
		pw.extend()
		h.ServeHTTP(pw, r)
	})
}

// progressWriter moves the connection's write deadline forward before
// each write: a write blocked that long by a client that does not read
// fails, and the connection is closed.
type progressWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (p *progressWriter) extend() { p.rc.SetWriteDeadline(time.Now().Add(p.idle)) }

func (p *progressWriter) Write(b []byte) (int, error) {
	p.extend()
	return p.ResponseWriter.Write(b)
}

// chunk is how much ReadFrom sends per deadline.
const chunk = 1 << 20

// ReadFrom keeps net/http's sendfile path (http.ServeContent copies a
// file through it), moving the deadline every chunk. A reader that is an
// io.LimitedReader is unwrapped, as the kernel path only sees through
// one of them.
func (p *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := p.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{p}, src)
	}
	inner, left := src, int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		inner, left = lr.R, lr.N
	}
	var total int64
	for left != 0 {
		n := int64(chunk)
		if left > 0 {
			n = min(n, left)
		}
		p.extend()
		got, err := rf.ReadFrom(&io.LimitedReader{R: inner, N: n})
		total += got
		if left > 0 {
			left -= got
		}
		if err != nil {
			return total, err
		}
		if got < n { // the source ended
			break
		}
	}
	if lr, ok := src.(*io.LimitedReader); ok {
		lr.N = left
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
