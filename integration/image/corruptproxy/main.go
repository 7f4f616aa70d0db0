// Command corruptproxy is a test peer: an HTTP reverse proxy that flips one
// byte of every PUT body it forwards (or of the first -times PUTs to the
// -only path), to prove that `gate update` refuses an upload the gate did
// not receive intact, and sends a corrupted boot partition again.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

type flipper struct {
	r   io.ReadCloser
	off int64
	at  int64
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0xff
	}
	f.off += int64(n)
	return n, err
}

func (f *flipper) Close() error { return f.r.Close() }

func main() {
	listen := flag.String("listen", ":80", "address to listen on")
	target := flag.String("target", "", "the gate's base URL")
	only := flag.String("only", "", "corrupt only PUTs to this path (e.g. /update/boot)")
	times := flag.Int("times", 0, "corrupt only the first N such PUTs (0: all)")
	flag.Parse()
	var mu sync.Mutex
	done := 0
	u, err := url.Parse(*target)
	if err != nil {
		log.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	inner := p.Director
	p.Director = func(r *http.Request) {
		inner(r)
		if r.Method != http.MethodPut || r.Body == nil || (*only != "" && r.URL.Path != *only) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if *times > 0 && done >= *times {
			log.Printf("passing %s intact", r.URL.Path)
			return
		}
		done++
		r.Body = &flipper{r: r.Body, at: 4096}
		log.Printf("corrupting %s", r.URL.Path)
	}
	log.Printf("corruptproxy listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, p))
}
