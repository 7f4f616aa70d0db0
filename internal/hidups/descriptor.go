package hidups

import (
	"fmt"
	"strings"
)

// ReportKind is the kind of a HID report: Input, Output or Feature.
type ReportKind uint8

// Report kinds.
const (
	Input ReportKind = iota + 1
	Output
	Feature
)

func (k ReportKind) String() string {
	switch k {
	case Input:
		return "Input"
	case Output:
		return "Output"
	case Feature:
		return "Feature"
	}
	return fmt.Sprintf("ReportKind(%d)", uint8(k))
}

// Main item flag bits (HID 1.11, 6.2.2.5).
const (
	FlagConstant = 1 << 0 // Constant (else Data)
	FlagVariable = 1 << 1 // Variable (else Array)
	FlagRelative = 1 << 2 // Relative (else Absolute)
	FlagNull     = 1 << 6 // Null state
	FlagVolatile = 1 << 7 // Volatile
)

// Limits that keep a hostile descriptor from using unbounded memory.
const (
	maxFields      = 1 << 14
	maxReportBits  = 8 * 4096
	maxDepth       = 32 // collections and push/pop
	maxLocalUsages = 1024
)

// A Field is one report field: one usage (or one array slot) with its
// place in a report.
type Field struct {
	// Path is the usage path, outermost collection first, ending with the
	// field's usage. An indexed collection (collection type >= 0x80, as
	// Eaton uses them) adds a node 0x00ff0000|index, written "[index".
	Path     []uint32
	Usage    uint32 // page<<16 | id; 0 for an array slot without usages
	ReportID uint8
	Kind     ReportKind
	Flags    uint32 // main item data: FlagConstant, FlagVariable, ...
	// BitOffset counts from the first data byte (after the report ID).
	BitOffset int
	BitSize   int
	LogMin    int64
	LogMax    int64
	PhyMin    int64
	PhyMax    int64
	HavePhy   bool // both physical extents were given
	Unit      uint32
	UnitExp   int8 // -8..7
	// UsageMin and UsageMax are the usages an array field selects from.
	UsageMin, UsageMax uint32
}

// PathString writes the path the way NUT does: names from the usage
// tables, "[n]" for indexes, 8 hex digits for unknown usages.
func (f *Field) PathString() string { return PathString(f.Path) }

// PathString formats a usage path (see Field.Path).
func PathString(path []uint32) string {
	var b strings.Builder
	for i, u := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		if u&0xffff0000 == 0x00ff0000 {
			fmt.Fprintf(&b, "[%d]", u&0xffff)
			continue
		}
		if n, ok := usageNames[u]; ok {
			b.WriteString(n)
			continue
		}
		fmt.Fprintf(&b, "%08x", u)
	}
	return b.String()
}

// Signed reports whether the field holds two's complement values (the
// logical minimum is negative).
func (f *Field) Signed() bool { return f.LogMin < 0 }

// Descriptor is a parsed report descriptor.
type Descriptor struct {
	Fields []*Field
	// UsesReportIDs is true when the descriptor declares report IDs, so
	// that every report starts with its ID byte.
	UsesReportIDs bool
	// ReportBits is the data size in bits of each report, by kind and ID.
	ReportBits map[ReportKey]int
	// Application is the usage of the first application collection.
	Application uint32

	byPath map[ReportKey]map[string]*Field // first field by kind and path
}

// ReportKey names one report.
type ReportKey struct {
	Kind ReportKind
	ID   uint8
}

// ReportLen is the length in bytes of the report as read from or written
// to the device, the report ID byte included when IDs are in use.
func (d *Descriptor) ReportLen(kind ReportKind, id uint8) int {
	n := (d.ReportBits[ReportKey{kind, id}] + 7) / 8
	if d.UsesReportIDs {
		n++
	}
	return n
}

// Find returns the first field of the given kind whose path formats as
// path (see PathString), or nil.
func (d *Descriptor) Find(kind ReportKind, path string) *Field {
	if d.byPath != nil {
		return d.byPath[ReportKey{Kind: kind}][path]
	}
	for _, f := range d.Fields {
		if f.Kind == kind && f.PathString() == path {
			return f
		}
	}
	return nil
}

// globals is the global item state (pushed and popped as a whole).
type globals struct {
	usagePage   uint32
	logMin      int64
	logMax      int64
	phyMin      int64
	phyMax      int64
	havePhyMin  bool
	havePhyMax  bool
	unit        uint32
	unitExp     int8
	reportSize  int
	reportID    uint8
	reportCount int
}

// A ParseError says where and why a descriptor is malformed.
type ParseError struct {
	Offset int // of the item's first byte
	Msg    string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("hid report descriptor: offset %d: %s", e.Offset, e.Msg)
}

// ParseDescriptor parses a HID report descriptor. It handles main, global
// and local items, long items (skipped), push/pop, collections (giving
// each field its usage path), report IDs, report size/count, logical and
// physical extents with sign, units and unit exponents, usage ranges and
// array and variable items. It never panics; a malformed descriptor gives
// a *ParseError with the offset of the bad item.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	d := &Descriptor{ReportBits: map[ReportKey]int{}}
	var (
		g        globals
		stack    []globals
		path     []uint32
		colNodes []int // nodes each open collection added to path
		usages   []uint32
		usageMin uint32
		haveMin  bool
		sawID    bool
	)
	resetLocal := func() {
		usages = usages[:0]
		haveMin = false
	}
	errAt := func(off int, format string, args ...any) error {
		return &ParseError{Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(b); {
		off := i
		prefix := b[i]
		if prefix == 0xfe { // long item
			if i+3 > len(b) {
				return nil, errAt(off, "long item header truncated (%d bytes left)", len(b)-i)
			}
			n := int(b[i+1])
			if i+3+n > len(b) {
				return nil, errAt(off, "long item of %d data bytes truncated (%d left)", n, len(b)-i-3)
			}
			i += 3 + n
			continue
		}
		size := int(prefix & 3)
		if size == 3 {
			size = 4
		}
		if i+1+size > len(b) {
			return nil, errAt(off, "item 0x%02x needs %d data bytes, %d left", prefix, size, len(b)-i-1)
		}
		var u uint32
		for k := 0; k < size; k++ {
			u |= uint32(b[i+1+k]) << (8 * k)
		}
		var s int64 // sign-extended by the item's size
		switch size {
		case 1:
			s = int64(int8(u))
		case 2:
			s = int64(int16(u))
		case 4:
			s = int64(int32(u))
		}
		i += 1 + size
		typ := (prefix >> 2) & 3
		tag := prefix >> 4
		switch typ {
		case 0: // main
			switch tag {
			case 0x8, 0x9, 0xb: // Input, Output, Feature
				kind := map[uint8]ReportKind{0x8: Input, 0x9: Output, 0xb: Feature}[tag]
				if g.reportSize < 0 || g.reportCount < 0 {
					return nil, errAt(off, "%v item with negative report size %d or count %d", kind, g.reportSize, g.reportCount)
				}
				key := ReportKey{kind, g.reportID}
				bits := g.reportSize * g.reportCount
				if g.reportSize > maxReportBits || g.reportCount > maxReportBits || d.ReportBits[key]+bits > maxReportBits {
					return nil, errAt(off, "%v report %d grows past %d bits (size %d × count %d)", kind, g.reportID, maxReportBits, g.reportSize, g.reportCount)
				}
				start := d.ReportBits[key]
				d.ReportBits[key] = start + bits
				variable := u&FlagVariable != 0
				if len(usages) == 0 && !haveMin && u&FlagConstant != 0 {
					resetLocal() // padding
					break
				}
				if len(d.Fields)+g.reportCount > maxFields {
					return nil, errAt(off, "more than %d fields", maxFields)
				}
				for k := 0; k < g.reportCount; k++ {
					f := &Field{
						ReportID:  g.reportID,
						Kind:      kind,
						Flags:     u,
						BitOffset: start + k*g.reportSize,
						BitSize:   g.reportSize,
						LogMin:    g.logMin,
						LogMax:    g.logMax,
						PhyMin:    g.phyMin,
						PhyMax:    g.phyMax,
						HavePhy:   g.havePhyMin && g.havePhyMax,
						Unit:      g.unit,
						UnitExp:   g.unitExp,
					}
					if variable {
						if len(usages) > 0 {
							f.Usage = usages[min(k, len(usages)-1)]
						}
					} else if len(usages) > 0 {
						f.Usage = usages[0]
						f.UsageMin, f.UsageMax = usages[0], usages[len(usages)-1]
					}
					f.Path = append(append(make([]uint32, 0, len(path)+1), path...), f.Usage)
					d.Fields = append(d.Fields, f)
				}
				resetLocal()
			case 0xa: // Collection
				if len(colNodes) >= maxDepth {
					return nil, errAt(off, "collections nested deeper than %d", maxDepth)
				}
				var cu uint32
				if len(usages) > 0 {
					cu = usages[0]
				}
				path = append(path, cu)
				nodes := 1
				if u >= 0x80 && u <= 0xff {
					path = append(path, 0x00ff0000|(u&0x7f))
					nodes++
				}
				colNodes = append(colNodes, nodes)
				if u == 1 && d.Application == 0 && len(colNodes) == 1 {
					d.Application = cu
				}
				resetLocal()
			case 0xc: // End Collection
				if len(colNodes) == 0 {
					return nil, errAt(off, "end collection without an open collection")
				}
				n := colNodes[len(colNodes)-1]
				colNodes = colNodes[:len(colNodes)-1]
				path = path[:len(path)-n]
				resetLocal()
			default:
				return nil, errAt(off, "unknown main item tag 0x%x", tag)
			}
		case 1: // global
			switch tag {
			case 0x0:
				g.usagePage = u & 0xffff
			case 0x1:
				g.logMin = s
			case 0x2:
				g.logMax = s
				// As NUT does: a maximum that became smaller than the
				// minimum by sign extension was meant unsigned.
				if g.logMax < g.logMin {
					g.logMax = int64(u)
				}
			case 0x3:
				g.phyMin, g.havePhyMin = s, true
			case 0x4:
				g.phyMax, g.havePhyMax = s, true
				if g.phyMax < g.phyMin {
					g.phyMax = int64(u)
				}
			case 0x5:
				e := int8(u & 0xf)
				if e > 7 {
					e -= 16
				}
				g.unitExp = e
			case 0x6:
				g.unit = u
			case 0x7:
				g.reportSize = int(u)
				if u > maxReportBits {
					return nil, errAt(off, "report size %d too large", u)
				}
			case 0x8:
				if u == 0 || u > 0xff {
					return nil, errAt(off, "report ID %d out of range 1..255", u)
				}
				g.reportID = uint8(u)
				sawID = true
			case 0x9:
				g.reportCount = int(u)
				if u > maxReportBits {
					return nil, errAt(off, "report count %d too large", u)
				}
			case 0xa: // push
				if len(stack) >= maxDepth {
					return nil, errAt(off, "push nested deeper than %d", maxDepth)
				}
				stack = append(stack, g)
			case 0xb: // pop
				if len(stack) == 0 {
					return nil, errAt(off, "pop without push")
				}
				g = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			default:
				return nil, errAt(off, "unknown global item tag 0x%x", tag)
			}
		case 2: // local
			full := func(v uint32) uint32 {
				if size == 4 {
					return v
				}
				return g.usagePage<<16 | v&0xffff
			}
			switch tag {
			case 0x0:
				if len(usages) >= maxLocalUsages {
					return nil, errAt(off, "more than %d usages before a main item", maxLocalUsages)
				}
				usages = append(usages, full(u))
			case 0x1:
				usageMin, haveMin = full(u), true
			case 0x2:
				if !haveMin {
					return nil, errAt(off, "usage maximum without usage minimum")
				}
				max := full(u)
				if max < usageMin || max-usageMin >= maxLocalUsages || len(usages)+int(max-usageMin) >= maxLocalUsages {
					return nil, errAt(off, "usage range 0x%08x..0x%08x invalid or larger than %d", usageMin, max, maxLocalUsages)
				}
				for v := usageMin; ; v++ {
					usages = append(usages, v)
					if v == max {
						break
					}
				}
				haveMin = false
			default:
				// designators, strings, delimiters: not used by UPSes
			}
		default:
			return nil, errAt(off, "reserved item type 3 (prefix 0x%02x)", prefix)
		}
	}
	if len(colNodes) != 0 {
		return nil, errAt(len(b), "descriptor ends with %d collection(s) open", len(colNodes))
	}
	d.UsesReportIDs = sawID
	d.byPath = map[ReportKey]map[string]*Field{}
	for _, f := range d.Fields {
		k := ReportKey{Kind: f.Kind}
		if d.byPath[k] == nil {
			d.byPath[k] = map[string]*Field{}
		}
		p := f.PathString()
		if _, dup := d.byPath[k][p]; !dup {
			d.byPath[k][p] = f
		}
	}
	return d, nil
}
