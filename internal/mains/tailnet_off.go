//go:build !tailnet

package mains

// tailnetMain: this build has no tailnet daemon (build tag tailnet).
func tailnetMain() (func(), bool) { return nil, false }
