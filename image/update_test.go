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

// An upload over a slow link takes as long as it needs; one that stops
// moving is cut after Stall, saying how far it got.
func TestUploadStall(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 32<<20)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		buf := make([]byte, 1<<20)
		for {
			n, err := io.ReadFull(r.Body, buf)
			h.Write(buf[:n])
			if err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // 32 reads: 1.6 s in all, four times Stall
		}
		w.Write([]byte(hex.EncodeToString(h.Sum(nil))))
	}))
	defer slow.Close()
	u := &Updater{BaseURL: slow.URL, Client: &http.Client{}, Stall: 400 * time.Millisecond}
	if err := u.upload(context.Background(), "/update/root", data); err != nil {
		t.Fatalf("a slow but moving upload: %v", err)
	}

	stuck := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.CopyN(io.Discard, r.Body, 8<<10)
		select { // stops reading: the sender's buffers fill, nothing moves
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(stuck) // before Close, which waits for the handler
	u = &Updater{BaseURL: hung.URL, Client: &http.Client{}, Stall: 300 * time.Millisecond}
	err := u.upload(context.Background(), "/update/root", bytes.Repeat([]byte{7}, 16<<20))
	if err == nil || !strings.Contains(err.Error(), "no progress for") {
		t.Fatalf("a stalled upload: %v", err)
	}
}
