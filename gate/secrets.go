package main

import (
	"fmt"
	"text/tabwriter"
)

func cmdSecrets(e *env, args []string) error {
	if len(args) == 0 || args[0] != "init" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(e.stderr, "usage: gate secrets init [-c FILE]")
			return nil
		}
		return usageError{"the only subcommand is init"}
	}
	fs := newFlags(e, "secrets init", "[-c FILE]")
	site := siteFlag(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	c, err := loadSite(e, *site)
	if err != nil && c == nil {
		return err
	}
	// Secrets are created even if the file has other problems: they are
	// independent of them.
	res, ierr := c.InitSecrets()
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	created, missing := 0, 0
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Ref.Path, r.Ref.Ref, r.Note)
		if r.Created {
			created++
		} else if r.Note != "exists, kept" && r.Note != "from the environment" {
			missing++
		}
	}
	tw.Flush()
	if ierr != nil {
		return ierr
	}
	fmt.Fprintf(e.stdout, "%d created in %s", created, c.SecretsDir)
	if missing > 0 {
		fmt.Fprintf(e.stdout, "; %d still to provide by you (listed above)", missing)
	}
	fmt.Fprintln(e.stdout)
	if err != nil {
		fmt.Fprintln(e.stdout, "the site file has problems: run gate check")
	}
	return nil
}

func cmdExample(e *env, args []string) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(e.stderr, "usage: gate example > site.yaml")
			return nil
		}
		return usageError{"no arguments"}
	}
	_, err := e.stdout.Write(exampleBytes())
	return err
}
