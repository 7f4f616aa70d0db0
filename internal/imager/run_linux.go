package imager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Image carries out one job on a machine: pick the disk, write and verify
// the image, re-read the partition table and seed cloud-init. Progress
// goes to bootstrapd through c.
func Image(ctx context.Context, log *slog.Logger, c *Client, job Job, sysBlock, mnt string) error {
	dev, err := PickDisk(sysBlock, job.Disk)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("open disk %s: %w", dev, err)
	}
	defer f.Close()
	size, err := DiskSize(f)
	if err != nil {
		return err
	}
	log.Info("writing image", "disk", dev, "disk_bytes", size, "url", job.URL, "format", job.Format)
	rep := newReporter(func(written, total int64) {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := c.Progress(pctx, written, total); err != nil {
			log.Warn("progress report", "err", err)
		}
	})
	res, err := Write(ctx, job, f, size, WriteOptions{
		HTTP: nil,
		Progress: func(written, total int64) {
			log.Info("progress", "written", written, "total", total)
			rep.Report(written, total)
		},
	})
	rep.Close()
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", job.URL, dev, err)
	}
	secs := res.Elapsed.Seconds()
	log.Info("image written and verified", "disk", dev, "written", res.Written, "downloaded", res.Downloaded,
		"seconds", fmt.Sprintf("%.1f", secs), "MBps", fmt.Sprintf("%.1f", float64(res.Written)/secs/1e6))
	// From here on the disk is bootable: a failure must undo that, so the
	// host does not boot an unconfigured system.
	seedErr := func() error {
		root, err := RootPartition(f)
		if err != nil {
			return fmt.Errorf("written disk %s: %w", dev, err)
		}
		part := PartitionDevice(dev, root.Number)
		if err := RereadPartitions(f, part); err != nil {
			return err
		}
		// Our exclusive open of the whole disk would keep the partition
		// from being mounted.
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", dev, err)
		}
		if err := Seed(part, mnt, job); err != nil {
			return err
		}
		log.Info("cloud-init seed written", "partition", part, "seed_url", job.SeedURL)
		return nil
	}()
	if seedErr != nil {
		if err := wipeHead(dev); err != nil {
			log.Error("could not make the disk unbootable again", "disk", dev, "err", err)
		}
		return seedErr
	}
	return nil
}

// wipeHead zeroes the start of the disk (boot code, partition table).
func wipeHead(dev string) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, HeadSize), 0); err != nil {
		return err
	}
	return f.Sync()
}

// Main is /init of the imager's initramfs. It never returns: the machine
// reboots into the new system, or (after a failure) powers off or waits.
func Main() {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("prog", "imager")
	if err := MountEssentials(); err != nil {
		log.Error("mount", "err", err)
	}
	ctx := context.Background()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	// Log to every console= device: the screen and the serial line.
	var outs []io.Writer
	for _, c := range Consoles(string(cmdline)) {
		if f, err := os.OpenFile(c, os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			outs = append(outs, f)
		}
	}
	if len(outs) == 0 {
		outs = append(outs, os.Stdout)
	}
	log = slog.New(slog.NewTextHandler(&consoles{w: outs}, nil)).With("prog", "imager")
	cfg, err := ParseCmdline(string(cmdline))
	if err != nil {
		fail(log, cfg, nil, err)
	}
	lease, err := BringUpNetwork(ctx, log)
	if err != nil {
		fail(log, cfg, nil, err)
	}
	log.Info("network up", "iface", lease.Iface, "mac", lease.MAC.String(), "addr", lease.IP.String())
	c := &Client{Base: cfg.Bootstrap, MAC: lease.MAC}
	var job Job
	for attempt := 1; ; attempt++ {
		job, err = c.Job(ctx)
		if err == nil || errors.Is(err, ErrNoJob) || attempt == 10 {
			break
		}
		log.Warn("job", "attempt", attempt, "err", err)
		time.Sleep(3 * time.Second)
	}
	if err != nil {
		if errors.Is(err, ErrNoJob) {
			fail(log, cfg, nil, err) // nothing to report to
		}
		fail(log, cfg, c, err)
	}
	log.Info("job", "host", job.Host, "disk", job.Disk, "url", job.URL, "format", job.Format, "instance_id", job.InstanceID)
	if cfg.Bench == "download" {
		start := time.Now()
		n, err := Download(ctx, job.URL)
		secs := time.Since(start).Seconds()
		log.Info("bench download", "bytes", n, "seconds", fmt.Sprintf("%.1f", secs), "MBps", fmt.Sprintf("%.1f", float64(n)/secs/1e6), "err", err)
		PowerOff()
		select {}
	}
	if err := Image(ctx, log, c, job, "/sys/block", "/mnt"); err != nil {
		fail(log, cfg, c, err)
	}
	if err := report(ctx, log, c, nil, reportRetry, reportFirstWait); err != nil {
		log.Error("reporting done failed; rebooting anyway", "err", err)
	}
	log.Info("imager done; rebooting")
	if err := Reboot(); err != nil {
		log.Error("reboot", "err", err)
	}
	select {}
}

// reportRetry is how long report keeps trying, and its first pause.
const (
	reportRetry     = 10 * time.Minute
	reportFirstWait = 2 * time.Second
)

// report tells bootstrapd the outcome, retrying for up to retryFor (the
// network may come back after a cut), pausing wait, then twice as long
// each time up to 30 s. A refusal (ErrRefused: bootstrapd says the report
// cannot be taken) is not retried, nor is anything after ctx ends.
func report(ctx context.Context, log *slog.Logger, c *Client, jobErr error, retryFor, wait time.Duration) error {
	end := time.Now().Add(retryFor)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Done(rctx, jobErr)
		cancel()
		if err == nil {
			log.Info("reported", "ok", jobErr == nil)
			return nil
		}
		if errors.Is(err, ErrRefused) || time.Now().After(end) {
			return err
		}
		log.Warn("report", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func fail(log *slog.Logger, cfg BootConfig, c *Client, jobErr error) {
	log.Error("imager failed", "err", jobErr)
	if c != nil {
		if err := report(context.Background(), log, c, jobErr, reportRetry, reportFirstWait); err != nil {
			log.Error("could not report the failure", "err", err)
		}
	}
	log.Error("IMAGER FAILED: the disk was not made bootable; the host stays flagged", "err", jobErr)
	if cfg.OnFail == "wait" {
		select {}
	}
	log.Info("powering off")
	if err := PowerOff(); err != nil {
		log.Error("power off", "err", err)
	}
	select {}
}

// consoles writes to every console, ignoring one that fails.
type consoles struct{ w []io.Writer }

func (c *consoles) Write(p []byte) (int, error) {
	for _, w := range c.w {
		w.Write(p)
	}
	return len(p), nil
}
