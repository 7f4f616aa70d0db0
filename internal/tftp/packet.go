// Package tftp is a read-only TFTP server (RFC 1350) with option
// negotiation (RFC 2347), blksize (RFC 2348), timeout and tsize
// (RFC 2349) and windowsize (RFC 7440), serving files from one jailed
// directory. It exists to hand the iPXE binaries to PXE ROMs; everything
// else goes over HTTP.
package tftp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Opcodes.
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes.
const (
	errUndefined    = 0
	errNotFound     = 1
	errAccess       = 2
	errIllegalOp    = 4
	errUnknownTID   = 5
	errOptionRefuse = 8
)

// Request is a parsed read or write request.
type Request struct {
	Op       uint16 // opRRQ or opWRQ
	Filename string
	Mode     string            // lower case: octet, netascii, mail
	Options  map[string]string // lower-case names; original order in Order
	Order    []string
}

// ParseRequest parses an RRQ or WRQ packet.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("tftp: request of %d bytes too short", len(b))
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		return nil, fmt.Errorf("tftp: opcode %d is not a request", op)
	}
	if b[len(b)-1] != 0 {
		return nil, fmt.Errorf("tftp: request not NUL-terminated")
	}
	fields := bytes.Split(b[2:len(b)-1], []byte{0})
	if len(fields) < 2 {
		return nil, fmt.Errorf("tftp: request without mode")
	}
	r := &Request{Op: op, Filename: string(fields[0]), Mode: strings.ToLower(string(fields[1])), Options: map[string]string{}}
	if r.Filename == "" {
		return nil, fmt.Errorf("tftp: empty file name")
	}
	switch r.Mode {
	case "octet", "netascii":
	case "mail":
		if op == opRRQ {
			return nil, fmt.Errorf("tftp: mail mode is for writing only")
		}
	default:
		return nil, fmt.Errorf("tftp: unknown mode %q", r.Mode)
	}
	rest := fields[2:]
	if len(rest)%2 != 0 {
		// Some clients pad with an extra NUL; tolerate one empty trailer.
		if len(rest[len(rest)-1]) != 0 {
			return nil, fmt.Errorf("tftp: option %q without value", rest[len(rest)-1])
		}
		rest = rest[:len(rest)-1]
	}
	for i := 0; i+1 < len(rest); i += 2 {
		name := strings.ToLower(string(rest[i]))
		if name == "" {
			return nil, fmt.Errorf("tftp: empty option name")
		}
		if _, dup := r.Options[name]; dup {
			continue
		}
		r.Options[name] = string(rest[i+1])
		r.Order = append(r.Order, name)
	}
	return r, nil
}

// negotiated are the transfer parameters after option negotiation.
type negotiated struct {
	blksize    int
	timeoutSec int
	windowsize int
	tsize      bool
	oack       []string // name, value pairs to acknowledge
}

// negotiate applies the options a server supports; unknown or invalid
// ones are ignored as RFC 2347 allows, and so is a timeout above
// maxTimeout seconds (RFC 2349 has the OACK repeat the client's value:
// declining is the only way to bound it).
func negotiate(r *Request, size int64, maxTimeout int) negotiated {
	n := negotiated{blksize: 512, timeoutSec: 0, windowsize: 1}
	for _, name := range r.Order {
		v := r.Options[name]
		num, err := strconv.Atoi(v)
		switch name {
		case "blksize":
			if err != nil || num < 8 {
				continue
			}
			n.blksize = min(num, 65464)
			n.oack = append(n.oack, name, strconv.Itoa(n.blksize))
		case "timeout":
			if err != nil || num < 1 || num > 255 || num > maxTimeout {
				continue
			}
			n.timeoutSec = num
			n.oack = append(n.oack, name, v)
		case "tsize":
			n.tsize = true
			n.oack = append(n.oack, name, strconv.FormatInt(size, 10))
		case "windowsize":
			if err != nil || num < 1 || num > 65535 {
				continue
			}
			n.windowsize = num
			n.oack = append(n.oack, name, v)
		}
	}
	return n
}

func oackPacket(pairs []string) []byte {
	b := []byte{0, opOACK}
	for _, s := range pairs {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, msg...)
	return append(b, 0)
}
