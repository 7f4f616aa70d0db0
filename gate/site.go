package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"gate/config"
)

// defaultSite is the site file used when -c is not given.
const defaultSite = "site.yaml"

// siteFlag adds -c to fs.
func siteFlag(fs *flag.FlagSet) *string {
	return fs.String("c", defaultSite, "the site file (default ./site.yaml; the embedded example when absent)")
}

// loadSite loads the site file named by -c. Without -c and without a
// ./site.yaml, it says so and uses the embedded example with ./secrets.
// Problems come back as an invalidError (exit 3).
func loadSite(e *env, path string) (*config.Config, error) {
	var (
		c   *config.Config
		err error
	)
	if path == defaultSite {
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			fmt.Fprintf(e.stderr, "gate: no %s here: using the embedded example site (%s) with secrets in ./secrets\n", defaultSite, config.ExampleName)
			c, err = config.Parse(config.ExampleName, config.Example(), "secrets")
			return c, wrapProblems(c, err)
		}
	}
	c, err = config.Load(path)
	return c, wrapProblems(c, err)
}

func wrapProblems(c *config.Config, err error) error {
	var ps config.Problems
	if errors.As(err, &ps) {
		return invalidError{err}
	}
	return err
}
