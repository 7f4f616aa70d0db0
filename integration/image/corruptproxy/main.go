// Command corruptproxy is a test peer: an HTTP reverse proxy that flips one
// byte of every PUT body it forwards, to prove that `gate update` refuses
// an upload the gate did not receive intact.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
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
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil {
		log.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	inner := p.Director
	p.Director = func(r *http.Request) {
		inner(r)
		if r.Method == http.MethodPut && r.Body != nil {
			r.Body = &flipper{r: r.Body, at: 4096}
			log.Printf("corrupting %s", r.URL.Path)
		}
	}
	log.Printf("corruptproxy listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, p))
}
