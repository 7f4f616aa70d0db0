// Command echoip is a test peer standing in for a "what is my IP" service
// on the simulated internet: it answers each caller's address as text.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
)

func main() {
	listen := flag.String("listen", ":8053", "address to listen on")
	flag.Parse()
	http.HandleFunc("/ip", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		w.Write([]byte(host + "\n"))
	})
	log.Printf("echoip listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
