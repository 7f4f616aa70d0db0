// Command bootstrapd re-images the site's hosts: proxyDHCP beside the ISP
// box (internal/pxe), TFTP for the iPXE binaries (internal/tftp), and the
// HTTP server for iPXE scripts, boot assets, the imager's job and
// cloud-init NoCloud data (internal/bootstrap).
package main

import "gate/internal/mains"

func main() { mains.Bootstrapd() }
