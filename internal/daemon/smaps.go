package daemon

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"gate/internal/metrics"
)

// The memory a daemon really uses. The daemons are one multi-call binary
// (cmd/gated): its text pages are shared, and process_resident_memory_bytes
// counts them in every process, so the sum over the daemons overstates the
// gate's memory. The proportional set size divides each shared page among
// the processes mapping it: summed over every process it is the memory
// used. Linux gives it in /proc/self/smaps_rollup (4.14 and later).
const smapsRollup = "/proc/self/smaps_rollup"

// smapsFields are the smaps_rollup fields exported, with their metric
// names and help.
var smapsFields = []struct{ field, name, help string }{
	{"Pss", "gate_memory_pss_bytes", "Proportional set size: resident pages, each shared page divided among the processes mapping it (/proc/self/smaps_rollup Pss)."},
	{"Private_Dirty", "gate_memory_private_dirty_bytes", "Resident pages written by this process alone (/proc/self/smaps_rollup Private_Dirty): heap, stacks, data."},
}

// parseSmapsRollup reads the "Name: N kB" lines of a smaps_rollup file
// and returns each field in bytes. The header line (the address range) and
// lines not of that form are skipped; a field whose number does not parse
// is an error naming the line.
func parseSmapsRollup(r io.Reader) (map[string]uint64, error) {
	m := map[string]uint64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(name, " \t") {
			continue // the header: "addr-addr ---p 00000000 00:00 0 [rollup]"
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > 1<<53 {
			return nil, fmt.Errorf("smaps_rollup line %q: not a size in kB", line)
		}
		m[name] = n * 1024
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading smaps_rollup: %w", err)
	}
	return m, nil
}

// memoryCollector exports smapsFields, read from path at every scrape
// (once for all of them). Where the file cannot be read (not Linux, an
// older kernel) the gauges are absent.
type memoryCollector struct{ path string }

func newMemoryCollector(path string) *memoryCollector {
	return &memoryCollector{path: path}
}

// Collect implements metrics.Collector.
func (c *memoryCollector) Collect() []metrics.Family {
	fams := make([]metrics.Family, len(smapsFields))
	for i, f := range smapsFields {
		fams[i] = metrics.Family{Name: f.name, Help: f.help, Type: metrics.TypeGauge}
	}
	f, err := os.Open(c.path)
	if err != nil {
		return fams
	}
	defer f.Close()
	m, err := parseSmapsRollup(f)
	if err != nil {
		return fams
	}
	for i, fl := range smapsFields {
		if v, ok := m[fl.field]; ok {
			fams[i].Samples = []metrics.Sample{{Value: float64(v)}}
		}
	}
	return fams
}
