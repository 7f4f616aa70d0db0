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

// exampleSecrets is the embedded example's secrets directory: ./secrets,
// what the example's site.secrets_dir means for a site file in the
// current directory. Every command uses it, so the image built from the
// example carries the keys that gate vps-config prints.
const exampleSecrets = "secrets"

// loadSite loads the site file named by -c. Without -c and without a
// ./site.yaml, it says so and uses the embedded example with ./secrets.
// Problems come back as an invalidError (exit 3).
func loadSite(e *env, path string) (*config.Config, error) {
	c, _, err := readSite(e, path, false)
	return c, err
}

// readSite loads the site file named by -c and returns its bytes too.
// For the embedded example with create set (gate image, gate update),
// the missing secrets are created first, so that `make image` works on a
// fresh machine.
func readSite(e *env, path string, create bool) (*config.Config, []byte, error) {
	if path == defaultSite {
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			fmt.Fprintf(e.stderr, "gate: no %s here: using the embedded example site (%s) with secrets in ./%s\n", defaultSite, config.ExampleName, exampleSecrets)
			data := config.Example()
			c, err := config.Parse(config.ExampleName, data, exampleSecrets)
			if create && c != nil {
				if _, ierr := c.InitSecrets(); ierr != nil {
					return nil, nil, ierr
				}
				c, err = config.Parse(config.ExampleName, data, exampleSecrets)
			}
			return c, data, wrapProblems(c, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading site file: %w", err)
	}
	c, err := config.Load(path)
	return c, data, wrapProblems(c, err)
}

func wrapProblems(c *config.Config, err error) error {
	var ps config.Problems
	if errors.As(err, &ps) {
		return invalidError{err}
	}
	return err
}
