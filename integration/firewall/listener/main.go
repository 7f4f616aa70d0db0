// Command listener is a test peer standing in for the gate's services: it
// answers HTTP on every TCP port given and prints each UDP datagram's
// source, so a test sees what a firewall lets through.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
)

func main() {
	tcp := flag.String("tcp", "", "comma-separated TCP ports")
	udp := flag.String("udp", "", "comma-separated UDP ports")
	flag.Parse()
	for _, p := range strings.Split(*tcp, ",") {
		if p == "" {
			continue
		}
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
				c.Close()
			}
		}()
	}
	for _, p := range strings.Split(*udp, ",") {
		if p == "" {
			continue
		}
		pc, err := net.ListenPacket("udp", ":"+p)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				_, a, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				host, _, _ := net.SplitHostPort(a.String())
				fmt.Printf("udp from %s\n", host)
			}
		}()
	}
	fmt.Println("listening")
	select {}
}
