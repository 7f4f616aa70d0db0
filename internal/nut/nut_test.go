package nut

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	for in, want := range map[string][]string{
		`GET VAR ups ups.status`:        {"GET", "VAR", "ups", "ups.status"},
		`SET VAR ups x "a b"`:           {"SET", "VAR", "ups", "x", "a b"},
		`PASSWORD "p\"w\\d"`:            {"PASSWORD", `p"w\d`},
		`  LIST   UPS  `:                {"LIST", "UPS"},
		`USERNAME a\ b`:                 {"USERNAME", "a b"},
		`VAR ups ups.model "Eaton \#1"`: {"VAR", "ups", "ups.model", "Eaton #1"},
	} {
		got, err := Split(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`GET "open`, `x\`, strings.Repeat("a", MaxLine+1)} {
		if _, err := Split(bad); err == nil {
			t.Errorf("Split(%.20q) accepted", bad)
		}
	}
	if got, _ := Split(Quote(`a "b" \c`)); len(got) != 1 || got[0] != `a "b" \c` {
		t.Errorf("Quote round trip: %q", got)
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{`GET VAR ups "x y"`, `a\"b`, `"`, `\`, "LIST VAR ups"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := Split(s)
		if err != nil {
			return
		}
		// Re-quoting every word and splitting again gives the same words.
		var q []string
		for _, x := range w {
			q = append(q, Quote(x))
		}
		w2, err := Split(strings.Join(q, " "))
		if len(strings.Join(q, " ")) <= MaxLine && (err != nil || !reflect.DeepEqual(w, w2)) {
			t.Fatalf("%q → %q → %q (%v)", s, w, w2, err)
		}
	})
}

func FuzzServerCommand(f *testing.F) {
	for _, s := range []string{"GET VAR ups ups.status", "LIST VAR ups", "LOGIN ups", "USERNAME x", "FSD ups", "INSTCMD ups x", "SET VAR ups a b"} {
		f.Add(s)
	}
	s := testServer()
	f.Fuzz(func(t *testing.T, line string) {
		w, err := Split(line)
		if err != nil || len(w) == 0 {
			return
		}
		out, _ := s.command(&conn{Conn: fakeConn{}}, w)
		if out == "" || !strings.HasSuffix(out, "\n") {
			t.Fatalf("%q → %q", line, out)
		}
	})
}

type fakeConn struct{ net.Conn }

func (fakeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func testServer() *Server {
	return &Server{
		UPS: "ups", Desc: "test UPS",
		Users: map[string]User{"mon": {Password: "pw"}, "boss": {Password: "pw", Primary: true, Admin: true}},
		Data: func() Snapshot {
			return Snapshot{Vars: map[string]string{"ups.status": "OL", "battery.charge": "100", "ups.model": `Eaton "5SC"`}}
		},
		Commands: map[string]string{"shutdown.return": "Turn off the load and return when power is back"},
		Exec:     func(string, string) error { return nil },
	}
}

func TestServerClient(t *testing.T) {
	s := testServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, ln)
	c, err := Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("mon", "wrong", "ups"); err == nil || !strings.Contains(err.Error(), "ACCESS-DENIED") {
		t.Fatalf("wrong password: %v", err)
	}
	c.Close()
	c, _ = Dial(ctx, ln.Addr().String())
	if err := c.Login("mon", "pw", "ups"); err != nil {
		t.Fatal(err)
	}
	vars, err := c.Vars("ups")
	if err != nil || vars["ups.model"] != `Eaton "5SC"` || vars["ups.status"] != "OL" {
		t.Fatalf("vars %v %v", vars, err)
	}
	if err := c.InstCmd("ups", "shutdown.return", ""); err == nil || !strings.Contains(err.Error(), "ACCESS-DENIED") {
		t.Errorf("a secondary ran an INSTCMD: %v", err)
	}
	if _, err := c.Get("ups", "nope"); err == nil || !strings.Contains(err.Error(), "VAR-NOT-SUPPORTED") {
		t.Errorf("GET unknown: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Logins()["mon"] != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Logins()["mon"] != 1 {
		t.Errorf("logins %v", s.Logins())
	}
	s.SetFSD()
	if st, _ := c.Get("ups", "ups.status"); st != "FSD OL" {
		t.Errorf("status after FSD: %q", st)
	}
	c.Close()
}

// The source's own types, descriptions, enums, ranges and refusals are
// served as they are; an FSD goes to OnFSD instead of the latch.
func TestServerPassThrough(t *testing.T) {
	var fsdBy string
	s := &Server{
		UPS: "ups", Users: map[string]User{"boss": {Password: "pw", Primary: true, Admin: true}},
		Data: func() Snapshot {
			return Snapshot{
				Vars:     map[string]string{"ups.status": "OL", "ups.firmware": "02.08", "input.transfer.high": "285", "device.type": "ups"},
				Writable: map[string]bool{"ups.firmware": true, "input.transfer.high": true},
				Commands: map[string]string{"load.off": "Turn off the load immediately"},
				Types:    map[string]string{"ups.firmware": "RW STRING:16", "input.transfer.high": "RW ENUM NUMBER"},
				Descs:    map[string]string{"ups.firmware": "UPS firmware"},
				Enums:    map[string][]string{"input.transfer.high": {"285", "290"}},
				Ranges:   map[string][][2]string{"ups.firmware": {{"1", "2"}}},
			}
		},
		Set:   func(name, value string) error { return fmt.Errorf("wrapped: %w", &Error{Word: "TOO-LONG", Cmd: "SET"}) },
		Exec:  func(cmd, param string) error { return fmt.Errorf("refused %s %s", cmd, param) },
		OnFSD: func(user string) error { fsdBy = user; return nil },
		Log:   slog.New(slog.DiscardHandler),
	}
	c := &conn{Conn: fakeConn{}}
	for _, tc := range []struct{ cmd, want string }{
		{"GET TYPE ups ups.firmware", "TYPE ups ups.firmware RW STRING:16\n"},
		{"GET TYPE ups device.type", "TYPE ups device.type STRING:32\n"}, // no type from the source: guessed
		{"GET DESC ups ups.firmware", "DESC ups ups.firmware \"UPS firmware\"\n"},
		{"GET DESC ups device.type", "DESC ups device.type \"Description unavailable\"\n"}, // as NUT's upsd
		{"GET DESC ups no.such", "DESC ups no.such \"Description unavailable\"\n"},
		{"GET CMDDESC ups no.such", "CMDDESC ups no.such \"Description unavailable\"\n"},
		{"LIST ENUM ups input.transfer.high", "BEGIN LIST ENUM ups input.transfer.high\nENUM ups input.transfer.high \"285\"\nENUM ups input.transfer.high \"290\"\nEND LIST ENUM ups input.transfer.high\n"},
		{"LIST RANGE ups ups.firmware", "BEGIN LIST RANGE ups ups.firmware\nRANGE ups ups.firmware \"1\" \"2\"\nEND LIST RANGE ups ups.firmware\n"},
		{"LIST ENUM ups no.such", "ERR VAR-NOT-SUPPORTED\n"},
		{"USERNAME boss", "OK\n"},
		{"PASSWORD pw", "OK\n"},
		{"SET VAR ups ups.firmware 0123456789abcdefXYZ", "ERR TOO-LONG\n"}, // the source's own word
		{"INSTCMD ups load.off 30", "ERR INSTCMD-FAILED\n"},                // no word: the generic one
		{"FSD ups", "OK FSD-SET\n"},
		{"GET VAR ups ups.status", "VAR ups ups.status \"OL\"\n"}, // no latch
	} {
		w, _ := Split(tc.cmd)
		if out, _ := s.command(c, w); out != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.cmd, out, tc.want)
		}
	}
	if fsdBy != "boss" {
		t.Errorf("OnFSD called for %q", fsdBy)
	}
	var param string
	s.Exec = func(cmd, p string) error { param = p; return nil }
	if out, _ := s.command(c, []string{"INSTCMD", "ups", "load.off", "30"}); out != "OK\n" || param != "30" {
		t.Errorf("INSTCMD with a parameter: %q, parameter %q", out, param)
	}
}

// FuzzClientAnswers: whatever a source answers, the client's readers of
// GET TYPE / GET DESC / LIST ENUM / LIST RANGE return an error or values
// without a line break (they are served again, one per line), and never
// hang or panic.
func FuzzClientAnswers(f *testing.F) {
	for _, s := range []string{
		"TYPE ups x RW STRING:16\n", "DESC ups x \"UPS firmware\"\n", "ERR VAR-NOT-SUPPORTED\n",
		"BEGIN LIST ENUM ups x\nENUM ups x \"a\"\nEND LIST ENUM ups x\n", "BEGIN LIST RANGE ups x\nRANGE ups x \"1\" \"2\"\nEND LIST RANGE ups x\n",
		"TYPE ups y NUMBER\n", "DESC ups x \"a\\nb\"\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		for _, ask := range []func(c *Client) ([]string, error){
			func(c *Client) ([]string, error) { v, err := c.Type("ups", "x"); return []string{v}, err },
			func(c *Client) ([]string, error) { v, err := c.Desc("ups", "x"); return []string{v}, err },
			func(c *Client) ([]string, error) { return c.Enum("ups", "x") },
			func(c *Client) ([]string, error) {
				rs, err := c.Range("ups", "x")
				var vs []string
				for _, r := range rs {
					vs = append(vs, r[0], r[1])
				}
				return vs, err
			},
		} {
			a, b := net.Pipe()
			go func() {
				bufio.NewReader(b).ReadString('\n') // the query
				b.Write([]byte(answer))
				b.Close()
			}()
			vals, err := ask(&Client{c: a, r: bufio.NewReader(a)})
			a.Close()
			if err != nil {
				continue
			}
			for _, v := range vals {
				if strings.ContainsAny(v, "\n") {
					t.Fatalf("%q gave a value with a line break: %q", answer, v)
				}
			}
		}
	})
}
