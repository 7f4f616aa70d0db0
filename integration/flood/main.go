// Command flood is a test peer for the abuse tests: it opens many TCP
// connections to one server, from one or many source addresses, holds
// them without a word, and reports how many the server kept open and how
// many it closed at once (its caps). It holds them until killed.
package main

import (
	"flag"
	"fmt"
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
	flag.Parse()
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
