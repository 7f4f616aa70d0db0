package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	"gate/image"
)

func cmdUpdate(e *env, args []string) error {
	fs := newFlags(e, "update", "[-c FILE] [--host ADDR] [--image FILE] [--arch arm64|amd64]")
	site := siteFlag(fs)
	host := fs.String("host", "", "the gate's address (default: gate.update_host, else its static address, else its host name)")
	img := fs.String("image", "", "an image built by gate image (default: build one now)")
	arch := fs.String("arch", "", "architecture when building: arm64 (a Pi) or amd64 (a pc, or the QEMU twin); default: from gate.model")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for the gate to come back")
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
	pw, err := c.ReadSecret(c.Gate.Password)
	if err != nil {
		return fmt.Errorf("gate.password: %w", err)
	}
	addr := gateHost(c, *host)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	path := *img
	var ts string
	if path == "" {
		dir, err := os.MkdirTemp("", "gate-update")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "gate.img")
		fmt.Fprintf(e.stderr, "gate update: building the %s image ...\n", c.Gate.Model)
		res, err := image.Build(ctx, image.Options{Config: c, SiteYAML: siteYAML, Arch: *arch, Output: path})
		if err != nil {
			return err
		}
		ts = res.BuildTimestamp
	}
	parts, err := image.ReadParts(path)
	if err != nil {
		return err
	}
	parts.BuildTimestamp = ts
	u := &image.Updater{BaseURL: "http://" + net.JoinHostPort(addr, strconv.Itoa(c.Gate.HTTPPort)), Password: string(pw), Log: e.stdout}
	fmt.Fprintf(e.stdout, "updating %s at %s from %s\n", c.Gate.Hostname, u.BaseURL, path)
	if err := u.Update(ctx, parts, *wait); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "update done")
	return nil
}
