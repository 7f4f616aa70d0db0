// Command gate is the operator's tool, run on the admin's machine: it checks
// the site file, creates its secrets, builds and flashes the SD image,
// pushes updates over the air, prints the VPS side's config and drives
// re-imaging.
//
// Exit codes: 0 success; 1 the command failed (the message says why);
// 2 usage error (unknown command or flag); 3 the site file has problems.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitInvalid = 3
)

// command is one subcommand.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	run     func(env *env, args []string) error
}

// env is what every command gets: where to write, and the site file flag.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
}

// usageError makes main exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// invalidError makes main exit 3 (the site file has problems).
type invalidError struct{ err error }

func (e invalidError) Error() string { return e.err.Error() }
func (e invalidError) Unwrap() error { return e.err }

func commands() []command {
	return []command{
		{"check", "[-c FILE]", "validate the site file and summarize what the gate will do", cmdCheck},
		{"secrets", "init [-c FILE]", "create the site's missing secrets (never overwrites)", cmdSecrets},
		{"example", "", "print the example site file, to start your own", cmdExample},
		{"image", "[-c FILE] [--arch arm64|amd64] [-o FILE]", "build the SD card image", cmdImage},
		{"flash", "[--yes] [--image FILE] DEVICE|FILE", "write the image to an SD card and verify it", cmdFlash},
		{"update", "[-c FILE] [--host ADDR]", "update the running gate over the air", cmdUpdate},
		{"vps-config", "[-c FILE]... [HUB]", "print the VPS hub's configuration", cmdVPSConfig},
		{"reimage", "[-c FILE] [--cancel] HOST", "flag a host for re-imaging at its next network boot", cmdReimage},
		{"hosts", "[-c FILE]", "show every host's boot and install state", cmdHosts},
		{"status", "[-c FILE] [--host ADDR] [--json]", "print the gate's status page (power, tunnel, DNS, hosts, bastion) as text", cmdStatus},
		{"version", "", "print gate's version", cmdVersion},
	}
}

func main() {
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}
	os.Exit(run(e, os.Args[1:]))
}

func run(e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(e, args[1:])
		var ue usageError
		var ie invalidError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(e.stderr, "gate %s: %v\nusage: gate %s %s\n", c.name, err, c.name, c.args)
			return exitUsage
		case errors.As(err, &ie):
			fmt.Fprintf(e.stderr, "gate %s: %v\n", c.name, err)
			return exitInvalid
		default:
			fmt.Fprintf(e.stderr, "gate %s: %v\n", c.name, err)
			return exitFailed
		}
	}
	fmt.Fprintf(e.stderr, "gate: unknown command %q (gate --help lists them)\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "gate: build, check and run the gate of a self-hosted site.")
	fmt.Fprintln(w, "\nusage: gate COMMAND [flags]; gate COMMAND --help for its flags\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nexit codes: 0 ok, 1 failed, 2 usage, 3 the site file has problems")
}

// newFlags makes a command's flag set; its errors go back as usage errors.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: gate %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, mapping errors to usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{strings.TrimSpace(err.Error())}
	}
	return nil
}

func notYet(what string) error {
	return fmt.Errorf("%s is not implemented yet in this build", what)
}
