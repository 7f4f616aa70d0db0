// Command imager is /init of the re-imaging initramfs (see
// internal/imager): booted by bootstrapd's PXE chain with
// gate.bootstrap=URL on the kernel command line, it writes the host's
// golden image to its disk, seeds cloud-init and reboots into it.
package main

import "gate/internal/imager"

func main() { imager.Main() }
