package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"gate/image"
)

func cmdImage(e *env, args []string) error {
	fs := newFlags(e, "image", "[-c FILE] [--arch arm64|amd64] [-o FILE]")
	site := siteFlag(fs)
	arch := fs.String("arch", "", "arm64 (a Pi) or amd64 (a pc, or the QEMU twin of a Pi site); default: from gate.model")
	out := fs.String("o", "build/gate.img", "the image file to write")
	size := fs.Int64("size", image.DefaultSize>>20, "image size in MiB (the SD card may be larger)")
	ts := fs.String("build-timestamp", "", "override the build timestamp gokrazy reports (default: derived from the inputs)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	c, siteYAML, err := readSite(e, *site, true)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(e.stderr, "gate image: building %s for %s from %s ...\n", *out, c.Gate.Model, c.File)
	res, err := image.Build(ctx, image.Options{
		Config: c, SiteYAML: siteYAML, Arch: *arch, Output: *out, Size: *size << 20, BuildTimestamp: *ts,
	})
	if err != nil {
		return err
	}
	res.Summary(e.stdout)
	return nil
}
