package imager

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// PickDisk chooses the target disk from sysBlock (normally /sys/block):
// want (e.g. /dev/vda) when set and present, else the only non-removable
// disk; several candidates or none is an error that names them.
func PickDisk(sysBlock, want string) (string, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", fmt.Errorf("list disks: %w", err)
	}
	var cands, all []string
	for _, e := range ents {
		name := e.Name()
		all = append(all, name)
		if want != "" {
			continue
		}
		if skipDisk(name) {
			continue
		}
		if readTrim(filepath.Join(sysBlock, name, "removable")) == "1" {
			continue
		}
		if sz := readTrim(filepath.Join(sysBlock, name, "size")); sz == "" || sz == "0" {
			continue
		}
		cands = append(cands, name)
	}
	if want != "" {
		name := strings.TrimPrefix(want, "/dev/")
		for _, a := range all {
			if a == name {
				return "/dev/" + name, nil
			}
		}
		return "", fmt.Errorf("disk %s from the job not found (disks: %s)", want, strings.Join(all, ", "))
	}
	sort.Strings(cands)
	switch len(cands) {
	case 1:
		return "/dev/" + cands[0], nil
	case 0:
		return "", fmt.Errorf("no non-removable disk found (block devices: %s)", strings.Join(all, ", "))
	default:
		return "", fmt.Errorf("several non-removable disks (%s): name one as the host's disk in the site file", strings.Join(cands, ", "))
	}
}

func skipDisk(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Partition is one entry of a disk's partition table.
type Partition struct {
	Number int   // as the kernel numbers it (vda1 is 1)
	Start  int64 // bytes
	Size   int64 // bytes
	Type   string
}

// PartitionDevice returns the device node of partition n of disk:
// /dev/vda + 1 = /dev/vda1; /dev/nvme0n1 + 1 = /dev/nvme0n1p1.
func PartitionDevice(disk string, n int) string {
	if disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

var gptLinuxRootX86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"

// Partitions reads an MBR (primary partitions) or GPT partition table.
func Partitions(r io.ReaderAt) ([]Partition, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, errors.New("no partition table (no 0x55AA boot signature)")
	}
	var parts []Partition
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		typ := e[4]
		lba := int64(binary.LittleEndian.Uint32(e[8:]))
		n := int64(binary.LittleEndian.Uint32(e[12:]))
		if typ == 0xEE {
			return gptPartitions(r)
		}
		if typ == 0 || n == 0 || typ == 0x05 || typ == 0x0F || typ == 0x85 {
			continue
		}
		parts = append(parts, Partition{Number: i + 1, Start: lba * 512, Size: n * 512, Type: fmt.Sprintf("%02x", typ)})
	}
	return parts, nil
}

func gptPartitions(r io.ReaderAt) ([]Partition, error) {
	hdr := make([]byte, 92)
	if _, err := r.ReadAt(hdr, 512); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, errors.New("protective MBR but no GPT header")
	}
	lba := int64(binary.LittleEndian.Uint64(hdr[72:]))
	count := binary.LittleEndian.Uint32(hdr[80:])
	esize := binary.LittleEndian.Uint32(hdr[84:])
	if count > 1024 || esize < 128 || esize > 4096 {
		return nil, fmt.Errorf("GPT header: implausible %d entries of %d bytes", count, esize)
	}
	tab := make([]byte, int(count)*int(esize))
	if _, err := r.ReadAt(tab, lba*512); err != nil {
		return nil, fmt.Errorf("read GPT entries: %w", err)
	}
	var parts []Partition
	for i := 0; i < int(count); i++ {
		e := tab[i*int(esize):]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		if last < first {
			continue
		}
		parts = append(parts, Partition{Number: i + 1, Start: first * 512, Size: (last - first + 1) * 512, Type: guid(e[:16])})
	}
	return parts, nil
}

func guid(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

// IsExt4 reports whether an ext2/3/4 superblock starts 1024 bytes into r.
func IsExt4(r io.ReaderAt, off int64) bool {
	m := make([]byte, 2)
	if _, err := r.ReadAt(m, off+1024+56); err != nil {
		return false
	}
	return m[0] == 0x53 && m[1] == 0xEF
}

// RootPartition picks the root filesystem of a written disk: the GPT
// "Linux root (x86-64)" partition if there is one with ext4 on it, else
// the largest ext4 partition.
func RootPartition(r io.ReaderAt) (Partition, error) {
	parts, err := Partitions(r)
	if err != nil {
		return Partition{}, err
	}
	var best *Partition
	for i := range parts {
		p := &parts[i]
		if !IsExt4(r, p.Start) {
			continue
		}
		if p.Type == gptLinuxRootX86_64 {
			return *p, nil
		}
		if best == nil || p.Size > best.Size {
			best = p
		}
	}
	if best == nil {
		return Partition{}, fmt.Errorf("no ext4 partition among %d partitions", len(parts))
	}
	return *best, nil
}
