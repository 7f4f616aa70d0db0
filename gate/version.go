package main

import (
	"fmt"
	"runtime/debug"

	"gate/config"
)

func exampleBytes() []byte { return config.Example() }

// version returns the module version and VCS revision gate was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v + " " + bi.GoVersion
}

func cmdVersion(e *env, args []string) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(e.stderr, "usage: gate version")
			return nil
		}
		return usageError{"no arguments"}
	}
	fmt.Fprintln(e.stdout, "gate", version())
	return nil
}
