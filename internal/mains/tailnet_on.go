//go:build tailnet

package mains

import "gate/internal/tailnet"

// tailnetMain is the tailnet daemon (see cmd/tailnet). tsnet more than
// doubles the binary, so it is only in builds with the tailnet tag, which
// the image uses when the site file has a tailnet section.
func tailnetMain() (func(), bool) { return tailnet.Main, true }
