package image

import (
	"bytes"
	"fmt"
	"regexp"

	"gopkg.in/yaml.v3"

	"gate/config"
)

var notSecretName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// inlineToFiles keeps secrets out of the root file system whatever their
// form: it returns the site file as the root holds it, each
// `inline:VALUE` secret replaced by `file:inline-<field>`, and those
// files' contents for /perm's secrets directory (0600, see permTree).
// A site file without inline secrets is returned as it is.
func inlineToFiles(c *config.Config, siteYAML []byte) ([]byte, map[string][]byte, error) {
	names := map[string]string{} // "inline:VALUE" → file name
	files := map[string][]byte{}
	for _, r := range c.SecretRefs() {
		if r.Scheme != "inline" {
			continue
		}
		if _, ok := names[string(r.Ref)]; ok {
			continue
		}
		name := "inline-" + notSecretName.ReplaceAllString(r.Path, "-")
		names[string(r.Ref)] = name
		files[name] = []byte(r.Name)
	}
	if len(names) == 0 {
		return siteYAML, nil, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(siteYAML, &doc); err != nil {
		return nil, nil, fmt.Errorf("site file: %w", err)
	}
	replaced := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			if name, ok := names[n.Value]; ok {
				n.Value, n.Style, n.Tag = "file:"+name, 0, "!!str"
				replaced[name] = true
			}
		}
		for _, k := range n.Content {
			walk(k)
		}
	}
	walk(&doc)
	if len(replaced) != len(files) {
		return nil, nil, fmt.Errorf("site file: %d inline secrets, %d found in the YAML", len(files), len(replaced))
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("site file: %w", err)
	}
	enc.Close()
	return b.Bytes(), files, nil
}
