// Command flood is a test peer for the abuse tests: it opens many TCP
// connections to one server, from one or many source addresses, holds
// them without a word, and reports how many the server kept open and how
// many it closed at once (its caps). It holds them until killed.
//
// With -trickle header or body it is a slowloris instead: each connection
// sends an HTTP request's start, then one byte a second of its header (or
// of a long body) for up to -for, and it reports when the server let go.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"
)

func main() {
	target := flag.String("target", "", "host:port")
	n := flag.Int("n", 1000, "connections")
	srcs := flag.String("src", "", "comma-separated source addresses (round robin; empty: any)")
	trickle := flag.String("trickle", "", "header or body: an HTTP slowloris")
	path := flag.String("path", "/", "slowloris: the request's path")
	dur := flag.Duration("for", time.Minute, "slowloris: how long to keep trickling")
	flag.Parse()
	if *trickle != "" {
		slowloris(*target, *n, *trickle, *path, *dur)
		return
	}
	var sources []string
	if *srcs != "" {
		sources = strings.Split(*srcs, ",")
	}
	conns := make([]net.Conn, *n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	sem := make(chan struct{}, 100) // dials in flight
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := net.Dialer{Timeout: 5 * time.Second}
			if len(sources) > 0 {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(sources[i%len(sources)])}
			}
			c, err := d.Dial("tcp", *target)
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	// Whatever the server sends first (an SSH version line) is read;
	// a connection it closed reads EOF.
	time.Sleep(time.Second)
	held, closed := 0, 0
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256)
			for {
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := c.Read(buf); err != nil {
					mu.Lock()
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						held++
					} else {
						closed++
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("flood: opened %d held %d closed %d failed %d\n", *n-failed, held, closed, failed)
	if held == 0 && failed == *n {
		log.Fatal("no connection at all")
	}
	select {}
}

// slowloris trickles n requests and reports when the server closed them.
func slowloris(target string, n int, mode, path string, dur time.Duration) {
	start := time.Now()
	var mu sync.Mutex
	var closedAt []time.Duration
	var wg sync.WaitGroup
	opened := 0
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			continue
		}
		opened++
		head := "POST " + path + " HTTP/1.1\r\nHost: gate\r\n"
		if mode == "body" {
			head += "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			closed := make(chan struct{})
			go func() { io.Copy(io.Discard, c); close(closed) }()
			c.Write([]byte(head))
			b := []byte("X")
			if mode == "body" {
				b = []byte(" ")
			}
			for time.Since(start) < dur {
				select {
				case <-closed:
				case <-time.After(time.Second):
					if _, err := c.Write(b); err == nil {
						continue
					}
				}
				mu.Lock()
				closedAt = append(closedAt, time.Since(start))
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	first, last := time.Duration(0), time.Duration(0)
	for _, d := range closedAt {
		if first == 0 || d < first {
			first = d
		}
		last = max(last, d)
	}
	fmt.Printf("slowloris %s: opened %d closed %d first %s last %s\n", mode, opened, len(closedAt), first.Round(time.Second), last.Round(time.Second))
}
