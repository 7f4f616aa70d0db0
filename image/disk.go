package image

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"golang.org/x/sys/unix"
)

// fixedTime is every file's time stamp in boot and root.
var fixedTime = time.Unix(1700000000, 0).UTC()

// writeDisk lays out the partitions and writes the three file systems.
func writeDisk(o Options, sig uint32, boot, root, perm *tree, res *Result) error {
	os.Remove(o.Output)
	// FAT time stamps follow SOURCE_DATE_EPOCH in go-diskfs.
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		os.Setenv("SOURCE_DATE_EPOCH", fmt.Sprint(fixedTime.Unix()))
		defer os.Unsetenv("SOURCE_DATE_EPOCH")
	}
	d, err := diskfs.Create(o.Output, o.Size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("creating %s: %w", o.Output, err)
	}
	defer d.Close()
	// /perm holds every secret: the image is the owner's alone (go-diskfs
	// creates it 0666 less the umask).
	if err := os.Chmod(o.Output, 0o600); err != nil {
		return fmt.Errorf("image %s: %w", o.Output, err)
	}

	total := uint32(o.Size / sector)
	rootA := uint32(bootStart + bootSectors)
	rootB := rootA + rootSectors
	permStart := rootB + rootSectors
	table := &mbr.Table{
		LogicalSectorSize: sector, PhysicalSectorSize: sector,
		Partitions: []*mbr.Partition{
			{Index: 1, Bootable: true, Type: mbr.Fat16bLBA, Start: bootStart, Size: bootSectors},
			{Index: 2, Type: mbr.Linux, Start: rootA, Size: rootSectors},
			{Index: 3, Type: mbr.Linux, Start: rootB, Size: rootSectors},
			{Index: 4, Type: mbr.Linux, Start: permStart, Size: total - permStart},
		},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("partition table: %w", err)
	}
	res.Partitions = []Partition{
		{1, "boot", "FAT16", bootStart * sector, bootSectors * sector},
		{2, "root A", "squashfs", int64(rootA) * sector, rootSectors * sector},
		{3, "root B", "(empty)", int64(rootB) * sector, rootSectors * sector},
		{4, "perm", "ext4", int64(permStart) * sector, int64(total-permStart) * sector},
	}

	if err := writeFAT(d, boot); err != nil {
		return fmt.Errorf("boot partition: %w", err)
	}
	if err := fixFAT16(d, bootStart*sector); err != nil {
		return fmt.Errorf("boot partition: %w", err)
	}
	size, err := writeSquashfs(d, root, int64(rootA)*sector)
	if err != nil {
		return fmt.Errorf("root partition: %w", err)
	}
	res.RootSize = size
	permOffset := int64(permStart) * sector
	if err := writeExt4(d, perm, permOffset, int64(total-permStart)*sector, o.Config.Gate.Hostname); err != nil {
		return fmt.Errorf("perm partition: %w", err)
	}

	// The disk signature (go-diskfs writes the table from offset 446 on).
	f, err := os.OpenFile(o.Output, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [6]byte
	binary.LittleEndian.PutUint32(b[:4], sig)
	if _, err := f.WriteAt(b[:], 440); err != nil {
		return err
	}
	// The same time as the FAT's (SOURCE_DATE_EPOCH, set above if unset).
	stamp, _ := sourceDateEpoch()
	if err := normalizeExt4(f, f, permOffset, stamp); err != nil {
		return fmt.Errorf("perm partition: %w", err)
	}
	return f.Sync()
}

func writeFAT(d *disk.Disk, t *tree) error {
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat16, VolumeLabel: "GOKRAZY", Reproducible: true})
	if err != nil {
		return err
	}
	for _, e := range t.sorted() {
		if e.Mode.IsDir() {
			if err := fsys.Mkdir(e.Path); err != nil {
				return fmt.Errorf("mkdir %s: %w", e.Path, err)
			}
			continue
		}
		if err := writeFile(fsys, e); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(fsys filesystem.FileSystem, e entry) error {
	data, err := e.content()
	if err != nil {
		return err
	}
	f, err := fsys.OpenFile(e.Path, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("creating %s: %w", e.Path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", e.Path, err)
	}
	return f.Close()
}

// writeSquashfs writes the root; it returns the file system's size.
func writeSquashfs(d *disk.Disk, t *tree, start int64) (int64, error) {
	sq, err := squashfs.Create(d.Backend, rootSectors*sector, start, 128<<10)
	if err != nil {
		return 0, err
	}
	// The squashfs writer builds from its workspace directory: populate
	// it, with fixed modes and times, then Finalize writes the image.
	ws := sq.Workspace()
	defer os.RemoveAll(ws)
	entries := t.sorted()
	for _, e := range entries {
		p := filepath.Join(ws, filepath.FromSlash(e.Path))
		switch {
		case e.Mode.IsDir():
			if err := os.MkdirAll(p, 0o755); err != nil {
				return 0, err
			}
		case e.Mode&fs.ModeSymlink != 0:
			if err := os.Symlink(e.Link, p); err != nil {
				return 0, err
			}
		default:
			data, err := e.content()
			if err != nil {
				return 0, err
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return 0, err
			}
		}
	}
	// Modes and times last, children first, so that filling a directory
	// does not touch its time again.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		p := filepath.Join(ws, filepath.FromSlash(e.Path))
		if e.Mode&fs.ModeSymlink != 0 {
			tv := unix.NsecToTimeval(fixedTime.UnixNano())
			if err := unix.Lutimes(p, []unix.Timeval{tv, tv}); err != nil {
				return 0, fmt.Errorf("link time of %s: %w", e.Path, err)
			}
			continue
		}
		if err := os.Chmod(p, e.Mode.Perm()); err != nil {
			return 0, err
		}
		if err := os.Chtimes(p, fixedTime, fixedTime); err != nil {
			return 0, err
		}
	}
	// The workspace is a 0700 temporary directory, and it becomes the
	// root inode: gokrazy's programs that drop privileges (ntp) could then
	// not even exec themselves. The root is 0755 like every directory.
	if err := os.Chmod(ws, 0o755); err != nil {
		return 0, err
	}
	if err := os.Chtimes(ws, fixedTime, fixedTime); err != nil {
		return 0, err
	}
	// go-diskfs reads link targets relative to the working directory, not
	// its workspace: finalize from inside the workspace. (This changes the
	// process's directory for a moment: Build is not for concurrent use.)
	wd, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	if err := os.Chdir(ws); err != nil {
		return 0, err
	}
	zero := uint32(0)
	ferr := sq.Finalize(squashfs.FinalizeOptions{Compression: &squashfs.CompressorGzip{CompressionLevel: 9, WindowSize: 15}, FileUID: &zero, FileGID: &zero})
	if err := os.Chdir(wd); err != nil {
		return 0, err
	}
	if ferr != nil {
		return 0, fmt.Errorf("finalize: %w", ferr)
	}
	// go-diskfs stamps the superblock with the wall clock (modification
	// time, bytes 8-11 of the squashfs superblock): fix it.
	f, ok := d.Backend.Writable()
	if ok != nil {
		return 0, ok
	}
	var sb [96]byte
	if _, err := f.ReadAt(sb[:], start); err != nil {
		return 0, err
	}
	binary.LittleEndian.PutUint32(sb[8:12], uint32(fixedTime.Unix()))
	if _, err := f.WriteAt(sb[8:12], start+8); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(sb[40:48])), nil // bytes_used
}

func writeExt4(d *disk.Disk, t *tree, start, size int64, seed string, features ...ext4.FeatureOpt) error {
	fsys, err := createExt4(d, start, size, seed, features...)
	if err != nil {
		return err
	}
	// mke2fs makes lost+found; e2fsck -f asks for it (and fsck at boot
	// would make it). go-diskfs does not.
	if err := fsys.Mkdir("lost+found"); err != nil {
		return fmt.Errorf("mkdir lost+found: %w", err)
	}
	if err := fsys.Chmod("lost+found", 0o700); err != nil {
		return fmt.Errorf("chmod lost+found: %w", err)
	}
	for _, e := range t.sorted() {
		e.Path = strings.TrimPrefix(e.Path, "/") // go-diskfs's ext4 takes io/fs paths
		if e.Mode.IsDir() {
			if err := fsys.Mkdir(e.Path); err != nil {
				return fmt.Errorf("mkdir %s: %w", e.Path, err)
			}
		} else if err := writeFile(fsys, e); err != nil {
			return err
		}
		if err := fsys.Chmod(e.Path, e.Mode.Perm()); err != nil {
			return fmt.Errorf("chmod %s: %w", e.Path, err)
		}
		if err := fsys.Chown(e.Path, 0, 0); err != nil {
			return fmt.Errorf("chown %s: %w", e.Path, err)
		}
	}
	return nil
}

// fixFAT16 adapts go-diskfs's FAT16 to what gokrazy's own FAT16B reader
// expects when it rewrites cmdline.txt in place (/update/switch), and what
// fsck.vfat accepts:
//
//   - gokrazy assumes the root directory follows the reserved sectors and a
//     single FAT. go-diskfs writes two identical copies: the first is
//     declared reserved (BPB: reserved sectors += sectors per FAT, number
//     of FATs = 1) and the second becomes the FAT. No data moves.
//   - go-diskfs marks cluster 2 allocated as if the root directory lived
//     there (as on FAT32), though FAT16's root directory is fixed: the
//     entry is cleared when no root directory entry starts there.
func fixFAT16(d *disk.Disk, start int64) error {
	f, err := d.Backend.Writable()
	if err != nil {
		return err
	}
	var bpb [32]byte
	if _, err := f.ReadAt(bpb[:], start); err != nil {
		return err
	}
	bps := int64(binary.LittleEndian.Uint16(bpb[11:13]))
	reserved := binary.LittleEndian.Uint16(bpb[14:16])
	nfats := bpb[16]
	rootEntries := int64(binary.LittleEndian.Uint16(bpb[17:19]))
	fatSectors := binary.LittleEndian.Uint16(bpb[22:24])
	if nfats != 2 || fatSectors == 0 || bps != sector {
		return fmt.Errorf("unexpected FAT16 layout: %d FATs of %d sectors, %d bytes a sector", nfats, fatSectors, bps)
	}
	fat1 := start + int64(reserved)*bps
	fat2 := fat1 + int64(fatSectors)*bps
	rootDir := fat2 + int64(fatSectors)*bps
	dir := make([]byte, rootEntries*32)
	if _, err := f.ReadAt(dir, rootDir); err != nil {
		return err
	}
	used := false
	for i := 0; i < len(dir); i += 32 {
		if dir[i] != 0 && dir[i] != 0xe5 && dir[i+11] != 0x0f && binary.LittleEndian.Uint16(dir[i+26:i+28]) == 2 {
			used = true
		}
	}
	var e [2]byte
	if _, err := f.ReadAt(e[:], fat2+4); err != nil {
		return err
	}
	if !used && binary.LittleEndian.Uint16(e[:]) >= 0xfff8 {
		for _, fat := range []int64{fat1, fat2} {
			if _, err := f.WriteAt([]byte{0, 0}, fat+4); err != nil {
				return err
			}
		}
	}
	binary.LittleEndian.PutUint16(bpb[14:16], reserved+fatSectors)
	bpb[16] = 1
	_, err = f.WriteAt(bpb[14:17], start+14)
	return err
}
