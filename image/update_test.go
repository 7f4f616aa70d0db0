package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGokrazy stands in for gokrazy's update endpoints: it keeps what was
// written to each partition, and corrupts (one flipped byte) or cuts the
// first bad boot uploads.
type fakeGokrazy struct {
	mu         sync.Mutex
	boot, root []byte
	bad        int  // boot uploads to spoil
	cut        bool // spoil by cutting the upload short, else by flipping a byte
	switched   bool
	build      string
}

func (g *fakeGokrazy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r.URL.Path {
	case "/":
		fmt.Fprintf(w, `{"BuildTimestamp":%q}`, g.build)
	case "/update/features":
		w.Write([]byte("partuuid,updatehash"))
	case "/update/root", "/update/boot":
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/update/boot" && g.bad > 0 {
			g.bad--
			if g.cut {
				g.boot = append(b[:len(b)/2:len(b)/2], g.boot[len(b)/2:]...) // half written
				panic(http.ErrAbortHandler)
			}
			b[100] ^= 0xff
		}
		h := sha256.Sum256(b)
		if r.URL.Path == "/update/boot" {
			g.boot = b
		} else {
			g.root = b
		}
		w.Write([]byte(hex.EncodeToString(h[:])))
	case "/update/switch":
		g.switched = true
	case "/reboot":
		g.build = "new"
	}
}

func TestUpdateBootUpload(t *testing.T) {
	parts := &Parts{Root: bytes.Repeat([]byte("r"), 8192), Boot: bytes.Repeat([]byte("b"), 4096), BuildTimestamp: "new"}
	for _, tc := range []struct {
		name     string
		bad      int
		cut      bool
		ok       bool
		switched bool
	}{
		{"intact", 0, false, true, true},
		{"corrupted once", 1, false, true, true},
		{"cut twice", 2, true, true, true},
		{"corrupted every time", BootAttempts, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGokrazy{bad: tc.bad, cut: tc.cut, build: "old", boot: bytes.Repeat([]byte("o"), 4096)}
			srv := httptest.NewServer(g)
			defer srv.Close()
			var log strings.Builder
			u := &Updater{BaseURL: srv.URL, Password: "pw", Log: &log, Pause: time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := u.Update(ctx, parts, 30*time.Second)
			if (err == nil) != tc.ok {
				t.Fatalf("Update: %v\n%s", err, log.String())
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if tc.ok && !bytes.Equal(g.boot, parts.Boot) {
				t.Error("the boot partition does not hold the image's after the update")
			}
			if g.switched != tc.switched {
				t.Errorf("switched %v, want %v", g.switched, tc.switched)
			}
			if !tc.ok && !strings.Contains(err.Error(), "do not power it off") {
				t.Errorf("the failure does not warn about the boot partition: %v", err)
			}
		})
	}
}
