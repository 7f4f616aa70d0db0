// Package imager is the logic of the re-imaging initramfs (cmd/imager): it
// asks bootstrapd for the host's job, streams the golden image straight to
// the target disk while hashing it, verifies the hash, finds the written
// root filesystem and drops the cloud-init NoCloud seed into it.
//
// The protocol with bootstrapd (issue 5) is:
//
//	GET  <base>/imager/job?mac=aa:bb:..  -> 200 Job (JSON); 404/403: no job
//	POST <base>/imager/progress {"mac","written","total"} -> 204
//	POST <base>/imager/done     {"mac","ok","error"}      -> 204
//
// The job's sha256 is the hash of the bytes served at its URL (for a zstd
// image: of the compressed file, as `sha256sum image.raw.zst` prints it).
package imager

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Job is what bootstrapd answers to GET /imager/job.
type Job struct {
	Host       string `json:"host"`
	Disk       string `json:"disk"`   // e.g. /dev/vda; empty: the only non-removable disk
	URL        string `json:"url"`    // the image
	Format     string `json:"format"` // raw or zstd
	SHA256     string `json:"sha256"` // hex, of the bytes at URL
	SeedURL    string `json:"seed_url"`
	InstanceID string `json:"instance_id"`
}

// ParseJob decodes and validates a job received from the network.
func ParseJob(data []byte) (Job, error) {
	var j Job
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&j); err != nil {
		return Job{}, fmt.Errorf("imager job: %w", err)
	}
	if err := j.Validate(); err != nil {
		return Job{}, err
	}
	return j, nil
}

// Validate checks that a job can be carried out.
func (j Job) Validate() error {
	var problems []string
	if u, err := url.Parse(j.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("url %q is not an http(s) URL", j.URL))
	}
	switch j.Format {
	case "raw", "zstd":
	default:
		problems = append(problems, fmt.Sprintf("format %q is not raw or zstd", j.Format))
	}
	if b, err := hex.DecodeString(j.SHA256); err != nil || len(b) != 32 {
		problems = append(problems, fmt.Sprintf("sha256 %q is not 64 hex digits", j.SHA256))
	}
	if u, err := url.Parse(j.SeedURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("seed_url %q is not an http(s) URL", j.SeedURL))
	}
	if j.Disk != "" && !strings.HasPrefix(j.Disk, "/dev/") {
		problems = append(problems, fmt.Sprintf("disk %q is not a /dev/ path", j.Disk))
	}
	if strings.ContainsAny(j.Host+j.SeedURL+j.InstanceID, "\n\r") {
		problems = append(problems, "host, seed_url or instance_id contains a line break")
	}
	if len(problems) > 0 {
		return fmt.Errorf("imager job: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Client talks to bootstrapd on behalf of one machine (its MAC).
type Client struct {
	Base string // e.g. http://10.0.0.2:8080 (from gate.bootstrap=)
	MAC  net.HardwareAddr
	HTTP *http.Client // nil: a client with a 30 s timeout
}

// ErrNoJob means bootstrapd has no job for this machine (404/403).
var ErrNoJob = errors.New("imager: bootstrapd has no job for this machine")

// ErrRefused means bootstrapd answered a report with a client error
// (4xx other than 408 and 429): sending the same report again cannot
// succeed, so it is not retried.
var ErrRefused = errors.New("imager: bootstrapd refused the report")

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Job fetches this machine's job.
func (c *Client) Job(ctx context.Context) (Job, error) {
	u := strings.TrimRight(c.Base, "/") + "/imager/job?mac=" + url.QueryEscape(c.MAC.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Job{}, fmt.Errorf("imager job: %w", err)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return Job{}, fmt.Errorf("imager job: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Job{}, fmt.Errorf("imager job: GET %s: %w", u, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusForbidden:
		return Job{}, fmt.Errorf("%w (GET %s: %s)", ErrNoJob, u, resp.Status)
	default:
		return Job{}, fmt.Errorf("imager job: GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	return ParseJob(body)
}

// Progress reports how many bytes of total are on the disk.
func (c *Client) Progress(ctx context.Context, written, total int64) error {
	return c.post(ctx, "/imager/progress", map[string]any{"mac": c.MAC.String(), "written": written, "total": total})
}

// Done reports the end of the job: ok, or the reason it failed.
func (c *Client) Done(ctx context.Context, jobErr error) error {
	m := map[string]any{"mac": c.MAC.String(), "ok": jobErr == nil, "error": ""}
	if jobErr != nil {
		m["error"] = jobErr.Error()
	}
	return c.post(ctx, "/imager/done", m)
}

func (c *Client) post(ctx context.Context, p string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	u := strings.TrimRight(c.Base, "/") + p
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("imager: POST %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("imager: POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: POST %s: %s: %s", ErrRefused, u, resp.Status, printable(body, 200))
	}
	return fmt.Errorf("imager: POST %s: %s", u, resp.Status)
}

// printable is b's first n bytes as one line of printable text (a
// server's message, for a log line).
func printable(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, string(b))
}
