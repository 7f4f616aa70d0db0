package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"gate/config"
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
	c, siteYAML, err := loadSiteForImage(e, *site)
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

// loadSiteForImage loads the site file and its bytes. For the embedded
// example, secrets live in build/secrets and the missing ones are created,
// so that `make image` works on a fresh machine.
func loadSiteForImage(e *env, path string) (*config.Config, []byte, error) {
	if path == defaultSite {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			fmt.Fprintf(e.stderr, "gate: no %s here: building the embedded example site (%s), secrets in build/secrets\n", defaultSite, config.ExampleName)
			data := config.Example()
			c, err := config.Parse(config.ExampleName, data, filepath.Join("build", "secrets"))
			if err != nil && c == nil {
				return nil, nil, wrapProblems(c, err)
			}
			if _, ierr := c.InitSecrets(); ierr != nil {
				return nil, nil, ierr
			}
			c, err = config.Parse(config.ExampleName, data, filepath.Join("build", "secrets"))
			return c, data, wrapProblems(c, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading site file: %w", err)
	}
	c, err := config.Load(path)
	if err != nil {
		return nil, nil, wrapProblems(c, err)
	}
	return c, data, nil
}
