package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes fams in the text format: each family's # HELP and
// # TYPE lines, then its samples. Families without samples are left out.
func WriteText(w io.Writer, fams []Family) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for _, f := range fams {
		if len(f.Samples) == 0 {
			continue
		}
		b = append(b[:0], "# HELP "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.Help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = append(b, orUntyped(f.Type)...)
		b = append(b, '\n')
		for _, s := range f.Samples {
			b = append(b, f.Name...)
			b = append(b, s.Suffix...)
			if len(s.Labels) > 0 {
				b = append(b, '{')
				for i, l := range s.Labels {
					if i > 0 {
						b = append(b, ',')
					}
					b = append(b, l.Name...)
					b = append(b, `="`...)
					b = appendEscaped(b, l.Value, true)
					b = append(b, '"')
				}
				b = append(b, '}')
			}
			b = append(b, ' ')
			b = appendFloat(b, s.Value)
			b = append(b, '\n')
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// orUntyped is t, or untyped when no type was given.
func orUntyped(t Type) Type {
	if t == "" {
		return TypeUntyped
	}
	return t
}

// appendEscaped escapes \ and newlines (help texts), and " too in label
// values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// Handler serves the registry's families in the text format, never
// compressed: the scrapers are on the gate's loopback (statusd, every
// 10 s) or its LAN, and a gzip writer per scrape (some 800 KB, pooled
// only until the next GC) was most of a scrape's garbage with
// client_golang.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var b bytes.Buffer
		if err := WriteText(&b, r.Gather()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		b.WriteTo(w)
	})
}

// Parse reads the text format: every sample, in families by name (a
// summary's or histogram's _sum, _count and _bucket samples belong to it
// when its # TYPE came first), in the order the families first appear; a
// family no # TYPE line names is untyped. A malformed line is an error
// that names its line number. Timestamps are read and dropped.
func Parse(r io.Reader) ([]Family, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	p := parser{index: map[string]int{}}
	for n := 1; sc.Scan(); n++ {
		if err := p.line(sc.Text()); err != nil {
			return nil, fmt.Errorf("metrics: line %d: %v: %.80q", n, err, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %v", err)
	}
	for i := range p.fams {
		p.fams[i].Type = orUntyped(p.fams[i].Type)
	}
	return p.fams, nil
}

type parser struct {
	fams  []Family
	index map[string]int // into fams, by name
}

func (p *parser) family(name string) *Family {
	i, ok := p.index[name]
	if !ok {
		i = len(p.fams)
		p.index[name] = i
		p.fams = append(p.fams, Family{Name: name})
	}
	return &p.fams[i]
}

// field cuts s's first space-separated field.
func field(s string) (f, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func (p *parser) line(line string) error {
	line = strings.TrimLeft(line, " \t")
	if line == "" {
		return nil
	}
	if rest, ok := strings.CutPrefix(line, "#"); ok {
		kw, rest := field(rest)
		if kw != "HELP" && kw != "TYPE" {
			return nil // a comment
		}
		name, rest := field(rest)
		if !validName(name) {
			return fmt.Errorf("invalid metric name %q", name)
		}
		f := p.family(name)
		if kw == "HELP" {
			h, err := unescape(strings.TrimLeft(rest, " \t"), false)
			if err != nil {
				return fmt.Errorf("# HELP %s: %v", name, err)
			}
			f.Help = h
			return nil
		}
		t, extra := field(rest)
		if strings.TrimSpace(extra) != "" {
			return fmt.Errorf("# TYPE %s: want one type", name)
		}
		switch Type(t) {
		case TypeCounter, TypeGauge, TypeSummary, TypeUntyped, "histogram":
		default:
			return fmt.Errorf("# TYPE %s: unknown type %q", name, t)
		}
		if f.Type != "" || len(f.Samples) > 0 {
			return fmt.Errorf("# TYPE %s again, or after its samples", name)
		}
		f.Type = Type(t)
		return nil
	}
	end := strings.IndexAny(line, "{ \t")
	if end < 0 {
		end = len(line)
	}
	name, rest := line[:end], line[end:]
	if !validName(name) {
		return fmt.Errorf("invalid metric name %q", name)
	}
	var s Sample
	if strings.HasPrefix(rest, "{") {
		ls, after, err := parseLabels(rest[1:])
		if err != nil {
			return err
		}
		s.Labels, rest = ls, after
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return fmt.Errorf("want a value and at most a timestamp after %s", name)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return fmt.Errorf("value %q of %s", fields[0], name)
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return fmt.Errorf("timestamp %q of %s", fields[1], name)
		}
	}
	s.Value = v
	for _, suffix := range []string{"_sum", "_count", "_bucket"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if i, known := p.index[base]; known && (p.fams[i].Type == TypeSummary || p.fams[i].Type == "histogram") {
				s.Suffix = suffix
				p.fams[i].Samples = append(p.fams[i].Samples, s)
				return nil
			}
		}
	}
	f := p.family(name)
	f.Samples = append(f.Samples, s)
	return nil
}

// parseLabels reads name="value",... up to the closing brace.
func parseLabels(s string) ([]Label, string, error) {
	var ls []Label
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return ls, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, "", fmt.Errorf("label without a value")
		}
		name := strings.TrimRight(s[:eq], " \t")
		if !validLabel(name) {
			return nil, "", fmt.Errorf("invalid label name %q", name)
		}
		for _, l := range ls {
			if l.Name == name {
				return nil, "", fmt.Errorf("label %s given twice", name)
			}
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return nil, "", fmt.Errorf("label %s: value not quoted", name)
		}
		end := 1
		for ; end < len(s) && s[end] != '"'; end++ {
			if s[end] == '\\' {
				end++
			}
		}
		if end >= len(s) {
			return nil, "", fmt.Errorf("label %s: value not closed", name)
		}
		v, err := unescape(s[1:end], true)
		if err != nil {
			return nil, "", fmt.Errorf("label %s: %v", name, err)
		}
		ls = append(ls, Label{name, v})
		s = strings.TrimLeft(s[end+1:], " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if !strings.HasPrefix(s, "}") {
			return nil, "", fmt.Errorf("want , or } after label %s", name)
		}
	}
}

// unescape undoes appendEscaped.
func unescape(s string, quote bool) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("escape at the end")
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !quote {
				return "", fmt.Errorf(`\" in a help text`)
			}
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

func validLabel(s string) bool {
	return validName(s) && !strings.Contains(s, ":")
}
