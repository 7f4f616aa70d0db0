package tailnet

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"gate/internal/nut"
)

func TestNUTVerdict(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"GET VAR ups ups.status\n", ""},
		{"list var ups\r\n", ""},
		{"LIST UPS\n", ""},
		{"VER\n", ""},
		{"NETVER\n", ""},
		{"LOGOUT\n", ""},
		{"   \n", ""},
		{"USERNAME admin\n", "ERR ACCESS-DENIED\n"},
		{"PASSWORD x\n", "ERR ACCESS-DENIED\n"},
		{"LOGIN ups\n", "ERR ACCESS-DENIED\n"},
		{"SET VAR ups ups.delay.shutdown 1\n", "ERR ACCESS-DENIED\n"},
		{"INSTCMD ups load.off\n", "ERR ACCESS-DENIED\n"},
		{"FSD ups\n", "ERR ACCESS-DENIED\n"},
		{"PRIMARY ups\n", "ERR ACCESS-DENIED\n"},
		{"MASTER ups\n", "ERR ACCESS-DENIED\n"},
		{"STARTTLS\n", "ERR FEATURE-NOT-CONFIGURED\n"},
		{`"GET" VAR ups x` + "\n", ""},              // a quoted word is the same word to upsd
		{`"FSD" ups` + "\n", "ERR ACCESS-DENIED\n"}, // so quoting does not smuggle a command
		{`GET "open` + "\n", "ERR INVALID-ARGUMENT\n"},
		{strings.Repeat("a", nut.MaxLine+1) + "\n", "ERR TOO-LONG\n"},
	} {
		if got := NUTVerdict(tc.line); got != tc.want {
			t.Errorf("NUTVerdict(%.30q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// FuzzNUTVerdict: a line goes through only if upsd would read its first
// word as a read command (or it has no word); a refusal is one NUT error line.
func FuzzNUTVerdict(f *testing.F) {
	for _, s := range []string{"GET VAR ups x", "FSD ups", `"FSD"`, `G\ET VAR`, "LIST\tVAR ups", "\x00FSD", `\FSD ups`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		v := NUTVerdict(line + "\n")
		words, err := nut.Split(strings.TrimRight(line, "\r\n"))
		if v == "" {
			if err != nil || (len(words) > 0 && !readCommands[strings.ToUpper(words[0])]) {
				t.Fatalf("%q let through: words %q, err %v", line, words, err)
			}
			return
		}
		if v != "ERR ACCESS-DENIED\n" && v != "ERR INVALID-ARGUMENT\n" && v != "ERR TOO-LONG\n" && v != "ERR FEATURE-NOT-CONFIGURED\n" {
			t.Fatalf("%q: refusal %q is not a NUT error line", line, v)
		}
		if err == nil && len(words) > 0 && readCommands[strings.ToUpper(words[0])] {
			t.Fatalf("read command %q refused", line)
		}
	})
}

// TestNUTReadOnlyRelay: read commands reach the server and its answers
// come back; the others are refused without reaching it.
func TestNUTReadOnlyRelay(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	var mu sync.Mutex
	var seen []string
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					mu.Lock()
					seen = append(seen, s.Text())
					mu.Unlock()
					c.Write([]byte("ANSWER " + s.Text() + "\n"))
				}
			}()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	p := &NUTReadOnly{Upstream: up.Addr().String(), Log: slog.New(slog.DiscardHandler), Refused: func(c string) { refused = append(refused, c) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, tc := range []struct{ send, want string }{
		{"GET VAR ups ups.status", "ANSWER GET VAR ups ups.status\n"},
		{"USERNAME admin", "ERR ACCESS-DENIED\n"},
		{"INSTCMD ups load.off", "ERR ACCESS-DENIED\n"},
		{"NOSUCH x", "ERR ACCESS-DENIED\n"},
		{"LIST VAR ups", "ANSWER LIST VAR ups\n"},
	} {
		c.Write([]byte(tc.send + "\n"))
		got, err := r.ReadString('\n')
		if err != nil || got != tc.want {
			t.Fatalf("%q: got %q %v, want %q", tc.send, got, err, tc.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "|") != "GET VAR ups ups.status|LIST VAR ups" {
		t.Errorf("the server saw %q", seen)
	}
	if strings.Join(refused, ",") != "USERNAME,INSTCMD,other" {
		t.Errorf("refused metric labels %q", refused)
	}
}

func TestNUTReadOnlyTooLong(t *testing.T) {
	up, _ := net.Listen("tcp", "127.0.0.1:0")
	defer up.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	p := &NUTReadOnly{Upstream: up.Addr().String(), Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Serve(ctx, ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(strings.Repeat("G", 4*nut.MaxLine)))
	got, _ := bufio.NewReader(c).ReadString('\n')
	if got != "ERR TOO-LONG\n" {
		t.Errorf("an endless line: %q", got)
	}
}
