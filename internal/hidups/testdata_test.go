package hidups

import (
	"bufio"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
)

// dump is one testdata file (see testdata/README.md).
type dump struct {
	head, tail []byte
	reports    map[uint8][]byte
	nut        []nutLine
	upsc       map[string]string
}

type nutLine struct {
	path        string
	kind        ReportKind
	id          uint8
	offset, bit int
	value       float64
}

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func readDump(t testing.TB, name string) *dump {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := &dump{reports: map[uint8][]byte{}, upsc: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "head":
			d.head = append(d.head, hexBytes(t, v)...)
		case "tail":
			d.tail = append(d.tail, hexBytes(t, v)...)
		case "report":
			b := hexBytes(t, v)
			d.reports[b[0]] = b
		case "nut":
			p := strings.Fields(v)
			if len(p) != 6 {
				t.Fatalf("%s: bad nut line %q", name, v)
			}
			id, _ := strconv.ParseUint(strings.TrimPrefix(p[2], "0x"), 16, 8)
			off, _ := strconv.Atoi(p[3])
			size, _ := strconv.Atoi(p[4])
			val, _ := strconv.ParseFloat(p[5], 64)
			kind := Feature
			if p[1] == "Input" {
				kind = Input
			}
			d.nut = append(d.nut, nutLine{p[0], kind, uint8(id), off, size, val})
		case "upsc":
			n, val, _ := strings.Cut(v, " ")
			d.upsc[n] = val
		}
	}
	return d
}
