package imager

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"gate/internal/atomicfile"
)

// SeedPath is where the NoCloud seed goes in the written root filesystem.
const SeedPath = "etc/cloud/cloud.cfg.d/99-gate.cfg"

// SeedConfig is the cloud.cfg.d file that points cloud-init at
// bootstrapd's per-host NoCloud data.
func SeedConfig(job Job) []byte {
	// strconv.Quote yields a valid YAML double-quoted scalar for the
	// printable ASCII URLs that Validate lets through.
	return []byte(fmt.Sprintf("# written by gate's imager for %s (instance %s)\ndatasource_list: [NoCloud]\ndatasource:\n  NoCloud:\n    seedfrom: %s\n",
		job.Host, job.InstanceID, strconv.Quote(job.SeedURL)))
}

// WriteSeed writes the seed into the root filesystem mounted at root and
// removes cloud-init state a golden image may carry, so the first boot
// is a new instance.
func WriteSeed(root string, job Job) error {
	p := filepath.Join(root, SeedPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write seed: %w", err)
	}
	if err := atomicfile.WriteFile(p, SeedConfig(job), 0o644); err != nil {
		return fmt.Errorf("write seed: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(root, "var/lib/cloud")); err != nil {
		return fmt.Errorf("clear cloud-init state: %w", err)
	}
	return nil
}
