package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is a place in the site file.
type Pos struct{ Line, Col int }

// positions maps a field path ("hosts[0].ip") to where its value stands.
type positions map[string]Pos

// Problem is one thing wrong with a site file.
type Problem struct {
	File    string
	Pos     Pos
	Path    string // the field, e.g. hosts[2].mac
	Message string // what is wrong (what would be right)
	Warning bool   // reported but not fatal
}

func (p Problem) String() string {
	file := p.File
	if file == "" {
		file = "site.yaml"
	}
	kind := ""
	if p.Warning {
		kind = "warning: "
	}
	if p.Path != "" {
		return fmt.Sprintf("%s:%d:%d: %s%s: %s", file, p.Pos.Line, p.Pos.Col, kind, p.Path, p.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s%s", file, p.Pos.Line, p.Pos.Col, kind, p.Message)
}

// Problems is every problem of a site file; as an error it lists them all,
// one a line.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	n := 0
	for _, p := range ps {
		if !p.Warning {
			n++
		}
	}
	fmt.Fprintf(&b, "%d problem(s) in the site file:", n)
	for _, p := range ps {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Errors returns only the fatal problems.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Warnings returns only the warnings.
func (ps Problems) Warnings() Problems {
	var out Problems
	for _, p := range ps {
		if p.Warning {
			out = append(out, p)
		}
	}
	return out
}

type decoder struct {
	pos      positions
	problems Problems
	depth    int // current nesting, bounded against recursive aliases
	visited  int // nodes decoded, bounded against alias bombs
}

// Bounds on what a site file may make the decoder do.
const (
	maxDepth = 64
	maxNodes = 200000
)

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Pos: Pos{n.Line, n.Column}, Path: path, Message: fmt.Sprintf(format, args...)})
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

// decode fills v from n strictly: unknown keys, duplicate keys and values
// of the wrong shape are problems; decoding goes on after each so that one
// run reports all of them.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.depth++
	d.visited++
	defer func() { d.depth-- }()
	if d.depth > maxDepth || d.visited > maxNodes {
		if d.visited == maxNodes+1 || d.depth == maxDepth+1 {
			d.fail(n, path, "nested too deep or too large (recursive or exploding YAML aliases?)")
		}
		return
	}
	d.pos[path] = Pos{n.Line, n.Column}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if !v.Type().Implements(textUnmarshaler) {
			d.decode(n, v.Elem(), path)
			return
		}
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) && v.Kind() != reflect.Pointer {
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a single value, found %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.fail(n, path, "%s", cleanTextErr(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping of keys, found %s", kindName(n))
			return
		}
		fields := map[string]int{}
		var names []string
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if name := yamlName(t.Field(i)); name != "" && t.Field(i).IsExported() {
				fields[name] = i
				names = append(names, name)
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[k.Value]
			if !ok {
				d.fail(k, joinPath(path, k.Value), "unknown key %q (known here: %s)", k.Value, strings.Join(names, ", "))
				continue
			}
			if seen[k.Value] {
				d.fail(k, joinPath(path, k.Value), "key %q given twice (give it once)", k.Value)
				continue
			}
			seen[k.Value] = true
			d.pos[joinPath(path, k.Value)+"#key"] = Pos{k.Line, k.Column}
			d.decode(val, v.Field(idx), joinPath(path, k.Value))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping of names, found %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if v.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.fail(k, p, "name %q given twice (names must be unique)", k.Value)
				continue
			}
			d.pos[p+"#key"] = Pos{k.Line, k.Column}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, p)
			v.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, found %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a text value, found %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected true or false, found %s", kindName(n))
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			switch strings.ToLower(n.Value) {
			case "yes", "on":
				b, err = true, nil
			case "no", "off":
				b, err = false, nil
			}
		}
		if err != nil {
			d.fail(n, path, "%q is not a boolean (true or false)", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a whole number, found %s", kindName(n))
			return
		}
		i, err := strconv.ParseInt(strings.TrimSuffix(n.Value, "%"), 0, 64)
		if err != nil {
			d.fail(n, path, "%q is not a whole number", n.Value)
			return
		}
		v.SetInt(i)
	default:
		d.fail(n, path, "cannot decode into %s", v.Type())
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// cleanTextErr rewords the standard library's parse errors.
func cleanTextErr(err error) string {
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "netip.ParsePrefix"):
		return "malformed network prefix, " + s + " (an address with its length, e.g. 192.168.1.0/24)"
	case strings.HasPrefix(s, "ParseAddr"):
		return "malformed IP address, " + s + " (e.g. 192.168.1.10 or 2001:db8::1)"
	}
	return s
}
