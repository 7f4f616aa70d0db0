package nut

import (
	"context"
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
