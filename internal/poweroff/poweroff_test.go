package poweroff

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A stand-in for gokrazy's /poweroff handler (update.go's powerHandler):
// POST, basic auth, the form values it reads.
func TestRequest(t *testing.T) {
	var got []string
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		if !ok || user != "gokrazy" || pw != "permpw" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/poweroff" {
			http.Error(w, "expected a POST request", http.StatusBadRequest)
			return
		}
		got = append(got, r.FormValue("async")+"|"+r.FormValue("wait_per_signal"))
		<-stop // gokrazy answers once every service has stopped
		w.Write([]byte("Powering off...\n"))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	dir := t.TempDir()
	portFile := filepath.Join(dir, "http-port.txt")
	os.WriteFile(portFile, []byte(port+"\n"), 0o644)
	perm, etc := filepath.Join(dir, "perm-pw"), filepath.Join(dir, "etc-pw")
	os.WriteFile(etc, []byte("etcpw\n"), 0o400)

	g := &Gokrazy{PortFile: portFile, PasswordFiles: []string{perm, etc}, Early: 300 * time.Millisecond}
	// Only the root's password: refused, with the status in the error.
	if err := g.Request(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("with the wrong password: %v", err)
	}
	// /perm's password comes first, as gokrazy reads it.
	os.WriteFile(perm, []byte("permpw\n"), 0o600)
	// gokrazy takes the request and stops the services (it answers only
	// then): Request returns without the answer, without error.
	if err := g.Request(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "|20s" {
		t.Errorf("requests %q, want one synchronous (no async) with 20s per signal", got)
	}
	close(stop)
	// Nothing listening: an error naming the address.
	srv.Close()
	if err := g.Request(context.Background()); err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+port) {
		t.Errorf("gokrazy down: %v", err)
	}
	// No password file at all.
	g.PasswordFiles = []string{filepath.Join(dir, "none")}
	if err := g.Request(context.Background()); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("no password: %v", err)
	}
}
