package image

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/google/uuid"
)

// The /perm partition is made reproducible in two steps. go-diskfs's ext4
// writer draws the file system's UUID, its directory hash seed and the
// journal's UUID from github.com/google/uuid's random source: while it
// creates the file system, that source is a stream derived from the host
// name (uuid.SetRand is process-wide, hence the lock). It also stamps the
// wall clock into the superblock and every inode: normalizeExt4 rewrites
// those times afterwards and recomputes the checksums it thereby breaks.

// uuidRandMu serializes the use of uuid's process-wide random source.
var uuidRandMu sync.Mutex

// seededReader is an endless deterministic byte stream: SHA-256 of the
// seed and a counter.
type seededReader struct {
	seed []byte
	n    uint64
	buf  []byte
}

func (r *seededReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], r.n)
		r.n++
		h := sha256.Sum256(append(append([]byte{}, r.seed...), c[:]...))
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// createExt4 creates an ext4 file system at start whose random parts
// derive from seed. The image uses go-diskfs's default features (no
// metadata_csum: the Pi's kernel is not the one the tests boot); the
// tests also try metadata_csum.
func createExt4(d *disk.Disk, start, size int64, seed string, features ...ext4.FeatureOpt) (*ext4.FileSystem, error) {
	uuidRandMu.Lock()
	defer uuidRandMu.Unlock()
	uuid.SetRand(&seededReader{seed: []byte("gate perm " + seed)})
	defer uuid.SetRand(nil)
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, err
	}
	return ext4.Create(d.Backend, size, start, d.LogicalBlocksize, &ext4.Params{VolumeName: "perm", UUID: &id, Features: features})
}

// ext4 on-disk offsets (see the kernel's Documentation/filesystems/ext4).
const (
	sbOffset        = 1024
	sbFirstDataBlk  = 0x14
	sbLogBlockSize  = 0x18
	sbBlocksPerGrp  = 0x20
	sbInodesPerGrp  = 0x28
	sbMtime         = 0x2c
	sbWtime         = 0x30
	sbLastcheck     = 0x40
	sbMagic         = 0x38
	sbInodeSize     = 0x58
	sbIncompat      = 0x60
	sbROCompat      = 0x64
	sbUUID          = 0x68
	sbDescSize      = 0xfe
	sbMkfsTime      = 0x108
	sbChecksumSeed  = 0x270
	sbTimeHi        = 0x274 // wtime_hi, mtime_hi, mkfs_time_hi, lastcheck_hi
	sbChecksum      = 0x3fc
	sbInodesCount   = 0x00
	incompat64Bit   = 0x80
	incompatCsumSd  = 0x2000
	roCompatMetaCsm = 0x400

	gdInodeTableLo = 0x08
	gdInodeTableHi = 0x28

	inGeneration = 0x64
	inChecksumLo = 0x7c
	inExtraIsize = 0x80
	inChecksumHi = 0x82
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the kernel's crc32c(seed, data): no inversion on the way in or
// out (Go's crc32.Update inverts both).
func crc32c(seed uint32, data []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, data)
}

// normalizeExt4 sets every time stamp of the ext4 file system at offset
// start of f to t: the superblock's and each used inode's (access, change,
// modification, creation), and recomputes their checksums. With
// metadata_csum it first checks the stored checksums, so it refuses a
// layout it does not understand instead of damaging it.
func normalizeExt4(f io.ReaderAt, w io.WriterAt, start int64, t time.Time) error {
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, start+sbOffset); err != nil {
		return fmt.Errorf("ext4 superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[sbMagic:]) != 0xef53 {
		return fmt.Errorf("ext4 superblock: bad magic %#x", le.Uint16(sb[sbMagic:]))
	}
	csum := le.Uint32(sb[sbROCompat:])&roCompatMetaCsm != 0
	ts := uint32(t.Unix())
	if err := normalizeSuperblock(sb, csum, ts); err != nil {
		return err
	}
	var seed uint32
	if csum {
		seed = crc32c(^uint32(0), sb[sbUUID:sbUUID+16])
		if le.Uint32(sb[sbIncompat:])&incompatCsumSd != 0 {
			seed = le.Uint32(sb[sbChecksumSeed:])
		}
	}

	blockSize := int64(1024) << le.Uint32(sb[sbLogBlockSize:])
	inodeSize := int64(le.Uint16(sb[sbInodeSize:]))
	perGroup := int64(le.Uint32(sb[sbInodesPerGrp:]))
	groups := (int64(le.Uint32(sb[sbInodesCount:])) + perGroup - 1) / perGroup
	descSize := int64(32)
	if le.Uint32(sb[sbIncompat:])&incompat64Bit != 0 {
		descSize = int64(le.Uint16(sb[sbDescSize:]))
	}
	gdtStart := start + blockSize // the block after the superblock's
	if blockSize == 1024 {
		gdtStart = start + 2048
	}
	gdt := make([]byte, groups*descSize)
	if _, err := f.ReadAt(gdt, gdtStart); err != nil {
		return fmt.Errorf("ext4 group descriptors: %w", err)
	}
	table := make([]byte, perGroup*inodeSize)
	for g := int64(0); g < groups; g++ {
		gd := gdt[g*descSize : (g+1)*descSize]
		blk := int64(le.Uint32(gd[gdInodeTableLo:]))
		if descSize >= 64 {
			blk |= int64(le.Uint32(gd[gdInodeTableHi:])) << 32
		}
		off := start + blk*blockSize
		if _, err := f.ReadAt(table, off); err != nil {
			return fmt.Errorf("ext4 inode table of group %d: %w", g, err)
		}
		changed := false
		for i := int64(0); i < perGroup; i++ {
			in := table[i*inodeSize : (i+1)*inodeSize]
			if allZero(in) {
				continue
			}
			num := uint32(g*perGroup + i + 1)
			if err := normalizeInode(in, num, seed, csum, ts); err != nil {
				return err
			}
			changed = true
		}
		if changed {
			if _, err := w.WriteAt(table, off); err != nil {
				return fmt.Errorf("ext4 inode table of group %d: %w", g, err)
			}
		}
	}
	if _, err := w.WriteAt(sb, start+sbOffset); err != nil {
		return fmt.Errorf("ext4 superblock: %w", err)
	}
	// The backup superblocks, at the start of some groups (which ones
	// depends on sparse_super): any group whose first block holds a
	// superblock of this file system.
	first := int64(le.Uint32(sb[sbFirstDataBlk:]))
	perGroupBlocks := int64(le.Uint32(sb[sbBlocksPerGrp:]))
	bk := make([]byte, 1024)
	for g := int64(1); g < groups; g++ {
		off := start + (first+g*perGroupBlocks)*blockSize
		if _, err := f.ReadAt(bk, off); err != nil {
			return fmt.Errorf("ext4 group %d: %w", g, err)
		}
		if le.Uint16(bk[sbMagic:]) != 0xef53 || string(bk[sbUUID:sbUUID+16]) != string(sb[sbUUID:sbUUID+16]) {
			continue
		}
		if err := normalizeSuperblock(bk, csum, ts); err != nil {
			return fmt.Errorf("backup in group %d: %w", g, err)
		}
		if _, err := w.WriteAt(bk, off); err != nil {
			return fmt.Errorf("ext4 backup superblock of group %d: %w", g, err)
		}
	}
	return nil
}

// normalizeSuperblock sets the superblock's time stamps to ts.
func normalizeSuperblock(sb []byte, csum bool, ts uint32) error {
	le := binary.LittleEndian
	if csum {
		if got, want := crc32c(^uint32(0), sb[:sbChecksum]), le.Uint32(sb[sbChecksum:]); got != want {
			return fmt.Errorf("ext4 superblock: checksum %#x, computed %#x: layout not understood", want, got)
		}
	}
	for _, o := range []int{sbMtime, sbWtime, sbLastcheck, sbMkfsTime} {
		if le.Uint32(sb[o:]) != 0 {
			le.PutUint32(sb[o:], ts)
		}
	}
	copy(sb[sbTimeHi:sbTimeHi+4], []byte{0, 0, 0, 0})
	if csum {
		le.PutUint32(sb[sbChecksum:], crc32c(^uint32(0), sb[:sbChecksum]))
	}
	return nil
}

// normalizeInode sets the times of inode num to ts and recomputes its
// checksum (after checking the stored one).
func normalizeInode(in []byte, num, seed uint32, csum bool, ts uint32) error {
	le := binary.LittleEndian
	extra := 0
	if len(in) > 128 {
		extra = int(le.Uint16(in[inExtraIsize:]))
	}
	hasHi := extra >= 4
	sum := func() uint32 {
		var b [4]byte
		le.PutUint32(b[:], num)
		c := crc32c(seed, b[:])
		le.PutUint32(b[:], le.Uint32(in[inGeneration:]))
		c = crc32c(c, b[:])
		lo, hi := le.Uint16(in[inChecksumLo:]), uint16(0)
		le.PutUint16(in[inChecksumLo:], 0)
		if hasHi {
			hi = le.Uint16(in[inChecksumHi:])
			le.PutUint16(in[inChecksumHi:], 0)
		}
		c = crc32c(c, in)
		le.PutUint16(in[inChecksumLo:], lo)
		if hasHi {
			le.PutUint16(in[inChecksumHi:], hi)
		} else {
			c &= 0xffff
		}
		return c
	}
	stored := func() uint32 {
		s := uint32(le.Uint16(in[inChecksumLo:]))
		if hasHi {
			s |= uint32(le.Uint16(in[inChecksumHi:])) << 16
		}
		return s
	}
	if csum {
		if got, want := sum(), stored(); got != want {
			return fmt.Errorf("ext4 inode %d: checksum %#x, computed %#x: layout not understood", num, want, got)
		}
	}
	for _, o := range []int{0x08, 0x0c, 0x10} { // atime, ctime, mtime
		le.PutUint32(in[o:], ts)
	}
	// The extra fields: ctime_extra 0x84, mtime_extra 0x88, atime_extra
	// 0x8c, crtime 0x90, crtime_extra 0x94, each present if the extra
	// size reaches past it.
	for _, f := range []struct {
		off int
		v   uint32
	}{{0x84, 0}, {0x88, 0}, {0x8c, 0}, {0x90, ts}, {0x94, 0}} {
		if 128+extra >= f.off+4 && len(in) >= f.off+4 {
			le.PutUint32(in[f.off:], f.v)
		}
	}
	c := uint32(0)
	if csum {
		c = sum()
	}
	// Without metadata_csum readers ignore these fields, but go-diskfs
	// fills them anyway (from the wall-clock times): zero them.
	le.PutUint16(in[inChecksumLo:], uint16(c))
	if hasHi {
		le.PutUint16(in[inChecksumHi:], uint16(c>>16))
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
