// Package nut speaks the Network UPS Tools network protocol (TCP 3493,
// protocol 1.3), both as a server that Debian's upsc, upsrw, upscmd and
// upsmon (primary or secondary) accept, and as a client of another upsd.
//
// One command per line; words are split on white space, "..." groups a
// word, and a backslash escapes the next character. Values are sent
// quoted, with \ and " escaped.
package nut

import (
	"errors"
	"strings"
)

// MaxLine bounds a command line, as upsd does.
const MaxLine = 512

// ErrTooLong is returned for lines over MaxLine.
var ErrTooLong = errors.New("TOO-LONG")

// Split tokenizes one command line.
func Split(line string) ([]string, error) {
	if len(line) > MaxLine {
		return nil, ErrTooLong
	}
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quoted bool
		escape bool
	)
	for _, r := range line {
		switch {
		case escape:
			cur.WriteRune(r)
			escape = false
		case r == '\\':
			escape, inWord = true, true
		case r == '"':
			if quoted {
				quoted = false
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			} else {
				if inWord {
					words = append(words, cur.String())
					cur.Reset()
				}
				quoted, inWord = true, true
			}
		case !quoted && (r == ' ' || r == '\t' || r == '\r' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted || escape {
		return nil, errors.New("INVALID-ARGUMENT")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Quote quotes a value for the wire.
func Quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
