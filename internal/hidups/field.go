package hidups

import (
	"fmt"
	"math"
	"math/bits"
)

// unitExponents is NUT's table of units whose SI (cgs based) HID encoding
// carries a power of ten: a volt is 10^7 g·cm²/(s³·A), a watt or VA is
// 10^7 g·cm²/s³. The field's unit exponent is lowered by it.
var unitExponents = map[uint32]int{
	0x00f0d121: 7, // voltage
	0x0000d121: 7, // power (VA, W)
}

// Exponent is the power of ten that turns the field's physical value into
// the unit NUT reports (V, A, W, s, %, Hz), as NUT's libhid computes it.
func (f *Field) Exponent() int {
	return int(f.UnitExp) - unitExponents[f.Unit]
}

// dataOffset returns the byte offset of report data in a report buffer.
func dataOffset(d *Descriptor) int {
	if d.UsesReportIDs {
		return 1
	}
	return 0
}

// Raw extracts the field's raw bits from report (as read from the device,
// with the report ID byte first when the descriptor uses IDs).
func (f *Field) raw(report []byte, skip int) (uint64, error) {
	if f.BitSize <= 0 || f.BitSize > 64 {
		return 0, fmt.Errorf("%s: field size %d bits not supported", f.PathString(), f.BitSize)
	}
	end := skip*8 + f.BitOffset + f.BitSize
	if end > len(report)*8 {
		return 0, fmt.Errorf("%s: report %d is %d bytes, field needs bits up to %d", f.PathString(), f.ReportID, len(report), end)
	}
	var v uint64
	for k := 0; k < f.BitSize; k++ {
		bit := skip*8 + f.BitOffset + k
		if report[bit/8]&(1<<(bit%8)) != 0 {
			v |= 1 << k
		}
	}
	return v, nil
}

// Logical returns the field's logical value from a report the way NUT
// reads it: bits above the logical range are dropped, the value is sign
// extended when the logical minimum is negative, then clamped to
// [LogMin, LogMax].
func (d *Descriptor) Logical(f *Field, report []byte) (int64, error) {
	v, err := f.raw(report, dataOffset(d))
	if err != nil {
		return 0, err
	}
	magMax := uint64(f.LogMax)
	if f.LogMax < 0 {
		magMax = uint64(-(f.LogMax + 1))
	}
	magMin := uint64(f.LogMin)
	if f.LogMin < 0 {
		magMin = uint64(-(f.LogMin + 1))
	}
	signbit := uint64(1) << bits.Len64(max(magMax, magMin))
	mask := signbit - 1
	if f.LogMin < 0 {
		mask |= signbit
	}
	if signbit == 0 { // 64-bit range
		mask = math.MaxUint64
	}
	v &= mask
	x := int64(v)
	if f.LogMin < 0 && v&signbit != 0 {
		x = int64(v | ^mask)
	}
	if x < f.LogMin {
		x = f.LogMin
	} else if x > f.LogMax {
		x = f.LogMax
	}
	return x, nil
}

// Value returns the field's value in NUT's units: the logical value,
// scaled to the physical extents when the descriptor gives them, times
// 10^Exponent.
func (d *Descriptor) Value(f *Field, report []byte) (float64, error) {
	l, err := d.Logical(f, report)
	if err != nil {
		return 0, err
	}
	p := float64(l)
	if f.HavePhy && !(f.PhyMin == 0 && f.PhyMax == 0) && f.PhyMax > f.PhyMin && f.LogMax > f.LogMin {
		p = float64(l-f.LogMin)*float64(f.PhyMax-f.PhyMin)/float64(f.LogMax-f.LogMin) + float64(f.PhyMin)
		p = min(max(p, float64(f.PhyMin)), float64(f.PhyMax))
	}
	return p * math.Pow10(f.Exponent()), nil
}

// ToLogical converts a value in NUT's units to the field's logical value
// (the inverse of Value). As NUT does, it is clamped to the logical range
// only when physical extents are given; otherwise it is written as is, so
// that -1 ("no countdown") reaches a delay field even when the
// descriptor's logical minimum is 0.
func (f *Field) ToLogical(v float64) int64 {
	p := v / math.Pow10(f.Exponent())
	if f.HavePhy && !(f.PhyMin == 0 && f.PhyMax == 0) && f.PhyMax > f.PhyMin && f.LogMax > f.LogMin {
		l := int64((p-float64(f.PhyMin))*float64(f.LogMax-f.LogMin)/float64(f.PhyMax-f.PhyMin)) + f.LogMin
		return min(max(l, f.LogMin), f.LogMax)
	}
	return int64(math.Round(p))
}

// Encode writes the logical value v into the field's bits of report
// (two's complement, truncated to the field's size), leaving every other
// bit alone.
func (d *Descriptor) Encode(f *Field, report []byte, v int64) error {
	if f.BitSize <= 0 || f.BitSize > 64 {
		return fmt.Errorf("%s: field size %d bits not supported", f.PathString(), f.BitSize)
	}
	skip := dataOffset(d)
	end := skip*8 + f.BitOffset + f.BitSize
	if end > len(report)*8 {
		return fmt.Errorf("%s: report %d is %d bytes, field needs bits up to %d", f.PathString(), f.ReportID, len(report), end)
	}
	u := uint64(v)
	for k := 0; k < f.BitSize; k++ {
		bit := skip*8 + f.BitOffset + k
		if u&(1<<k) != 0 {
			report[bit/8] |= 1 << (bit % 8)
		} else {
			report[bit/8] &^= 1 << (bit % 8)
		}
	}
	return nil
}
