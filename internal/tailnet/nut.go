package tailnet

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"gate/internal/nut"
	"gate/internal/tcpserve"
)

// readCommands are the NUT commands that only read (what upsc and
// upsc -l/-c send); everything else (USERNAME, PASSWORD, LOGIN, SET,
// INSTCMD, FSD, PRIMARY, STARTTLS, ...) is answered ERR ACCESS-DENIED
// without reaching the server.
var readCommands = map[string]bool{"VER": true, "NETVER": true, "PROTVER": true, "HELP": true, "GET": true, "LIST": true, "LOGOUT": true}

// writeCommands name the refused commands in logs and metrics (any other
// refused line is "other", so a client cannot make up label values).
var writeCommands = map[string]bool{"USERNAME": true, "PASSWORD": true, "LOGIN": true, "SET": true, "INSTCMD": true, "FSD": true, "PRIMARY": true, "MASTER": true}

// NUTVerdict says whether one NUT command line may go on to the server:
// "" if so, else the error line the client gets instead.
func NUTVerdict(line string) string {
	words, err := nut.Split(strings.TrimRight(line, "\r\n"))
	switch {
	case errors.Is(err, nut.ErrTooLong):
		return "ERR TOO-LONG\n"
	case err != nil:
		return "ERR INVALID-ARGUMENT\n"
	case len(words) == 0:
		return "" // upsd ignores empty lines
	case readCommands[strings.ToUpper(words[0])]:
		return ""
	case strings.EqualFold(words[0], "STARTTLS"):
		// upsc asks first; the tailnet already encrypts.
		return "ERR FEATURE-NOT-CONFIGURED\n"
	}
	return "ERR ACCESS-DENIED\n"
}

// NUTReadOnly relays NUT clients to the server at Upstream, letting
// through only the commands that read (upsc), so a tailnet member can
// watch the UPS but not log in, set variables, run commands or raise FSD.
type NUTReadOnly struct {
	Upstream    string // host:port of the gate's NUT server
	Log         *slog.Logger
	IdleTimeout time.Duration // default 5m, as upsd's
	// Refused counts command lines refused (may be nil).
	Refused func(command string)
}

// Serve relays the clients of ln until ctx is done.
func (p *NUTReadOnly) Serve(ctx context.Context, ln net.Listener) error {
	return tcpserve.Serve(ctx, ln, p.handle)
}

func (p *NUTReadOnly) handle(ctx context.Context, c net.Conn) {
	idle := p.IdleTimeout
	if idle == 0 {
		idle = 5 * time.Minute
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	up, err := d.DialContext(dctx, "tcp", p.Upstream)
	cancel()
	if err != nil {
		p.Log.Warn("NUT server unreachable", "upstream", p.Upstream, "client", c.RemoteAddr().String(), "err", err)
		io.WriteString(c, "ERR DRIVER-NOT-CONNECTED\n")
		return
	}
	defer up.Close()
	// Answers flow back as they come. NUT clients wait for each answer
	// before the next command, so an ERR written here never lands inside
	// an answer of the server's.
	go func() {
		io.Copy(c, up)
		c.Close()
	}()
	r := bufio.NewReaderSize(c, nut.MaxLine+2)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			io.WriteString(c, "ERR TOO-LONG\n")
			return
		}
		if err != nil {
			return
		}
		if v := NUTVerdict(string(line)); v == "ERR FEATURE-NOT-CONFIGURED\n" {
			if _, err := io.WriteString(c, v); err != nil {
				return
			}
			continue
		} else if v != "" {
			name := "other"
			if f := strings.Fields(string(line)); len(f) > 0 && writeCommands[strings.ToUpper(f[0])] {
				name = strings.ToUpper(f[0])
			}
			p.Log.Info("NUT command refused (read-only on the tailnet)", "command", name, "client", c.RemoteAddr().String())
			if p.Refused != nil {
				p.Refused(name)
			}
			if _, err := io.WriteString(c, v); err != nil {
				return
			}
			continue
		}
		if _, err := up.Write(line); err != nil {
			return
		}
	}
}
