package imager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// testImage is 3 MiB of mixed data: a "boot sector", random blocks and zeros.
func testImage(t testing.TB) []byte {
	img := make([]byte, 3<<20)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < len(img); i += 4096 {
		if (i/4096)%3 != 0 {
			r.Read(img[i : i+4096])
		}
	}
	img[510], img[511] = 0x55, 0xAA
	return img
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func zst(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	w, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// serve starts a real HTTP server on loopback that serves files by name.
func serve(t *testing.T, files map[string][]byte) string {
	dir := t.TempDir()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(dir)))
	// /cut/NAME sends the headers and half of NAME, then drops the connection.
	mux.HandleFunc("/cut/", func(w http.ResponseWriter, r *http.Request) {
		b := files[strings.TrimPrefix(r.URL.Path, "/cut/")]
		w.Header().Set("Content-Length", itoa(len(b)))
		w.WriteHeader(200)
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	})
	// /stall/NAME sends half of NAME, then nothing while the client waits.
	mux.HandleFunc("/stall/", func(w http.ResponseWriter, r *http.Request) {
		b := files[strings.TrimPrefix(r.URL.Path, "/stall/")]
		w.Header().Set("Content-Length", itoa(len(b)))
		w.WriteHeader(200)
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func itoa(n int) string   { return strconv.Itoa(n) }
func fmtInt(n int) string { return strconv.Itoa(n) }

func TestWrite(t *testing.T) {
	img := testImage(t)
	z := zst(t, img)
	// A frame with its content size, as the zstd command line writes it.
	enc, _ := zstd.NewWriter(nil)
	zfcs := enc.EncodeAll(img, nil)
	base := serve(t, map[string][]byte{"img.raw": img, "img.raw.zst": z, "img.fcs.zst": zfcs})
	tests := []struct {
		name     string
		path     string
		format   string
		sha      string
		diskSize int64
		idle     time.Duration
		wantErr  string
		// untouched: the failure comes before any write, the old disk stays as it was.
		untouched bool
	}{
		{"raw", "/img.raw", "raw", sum(img), 4 << 20, 0, "", false},
		{"raw exact disk", "/img.raw", "raw", sum(img), 3 << 20, 0, "", false},
		{"zstd", "/img.raw.zst", "zstd", sum(z), 4 << 20, 0, "", false},
		{"wrong sha256", "/img.raw", "raw", sum([]byte("other")), 4 << 20, 0, "sha256 mismatch", false},
		{"zstd hash of the raw bytes", "/img.raw.zst", "zstd", sum(img), 4 << 20, 0, "sha256 mismatch", false},
		{"404", "/missing.raw", "raw", sum(img), 4 << 20, 0, "404 Not Found", true},
		{"disk too small raw", "/img.raw", "raw", sum(img), 2 << 20, 0, "larger than the disk", true},
		{"disk too small zstd stream", "/img.raw.zst", "zstd", sum(z), 2 << 20, 0, "larger than the disk", false},
		{"disk too small zstd with size", "/img.fcs.zst", "zstd", sum(zfcs), 2 << 20, 0, "larger than the disk", true},
		{"zstd with size", "/img.fcs.zst", "zstd", sum(zfcs), 4 << 20, 0, "", false},
		{"connection cut", "/cut/img.raw", "raw", sum(img), 4 << 20, 0, "img.raw", false},
		{"stall", "/stall/img.raw", "raw", sum(img), 4 << 20, 300 * time.Millisecond, "no data for", false},
		{"zstd garbage", "/img.raw", "zstd", sum(img), 4 << 20, 0, "img.raw", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disk, err := os.Create(filepath.Join(t.TempDir(), "disk"))
			if err != nil {
				t.Fatal(err)
			}
			defer disk.Close()
			// An old system on the disk: its boot sector must not survive a failure.
			old := bytes.Repeat([]byte{0xAB}, int(tt.diskSize))
			disk.WriteAt(old, 0)
			job := Job{Host: "ceph-1", URL: base + tt.path, Format: tt.format, SHA256: tt.sha, SeedURL: base + "/seed/", InstanceID: "i-1"}
			var reports int
			res, err := Write(context.Background(), job, disk, tt.diskSize, WriteOptions{Idle: tt.idle, Progress: func(w, total int64) { reports++ }})
			got, _ := os.ReadFile(disk.Name())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if tt.untouched {
					if !bytes.Equal(got, old) {
						t.Fatalf("a failure before writing changed the disk")
					}
					return
				}
				if bytes.Equal(got[:512], old[:512]) {
					t.Fatalf("failed write left the old boot sector in place")
				}
				if bytes.Equal(got[:512], img[:512]) {
					t.Fatalf("failed write made the disk bootable (new boot sector written)")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Written != int64(len(img)) {
				t.Fatalf("written %d, want %d", res.Written, len(img))
			}
			if !bytes.Equal(got[:len(img)], img) {
				t.Fatalf("disk content differs from the image")
			}
			if reports == 0 {
				t.Fatalf("no progress report")
			}
		})
	}
}

func TestParseJob(t *testing.T) {
	good := `{"host":"ceph-1","disk":"/dev/vda","url":"http://10.0.0.2:8080/images/g.raw.zst","format":"zstd","sha256":"` + strings.Repeat("ab", 32) + `","seed_url":"http://10.0.0.2:8080/nocloud/ceph-1/","instance_id":"ceph-1-1"}`
	tests := []struct {
		name, in, wantErr string
	}{
		{"good", good, ""},
		{"no disk", strings.Replace(good, `"/dev/vda"`, `""`, 1), ""},
		{"bad format", strings.Replace(good, `"zstd"`, `"qcow2"`, 1), "format"},
		{"bad sha", strings.Replace(good, strings.Repeat("ab", 32), "abc", 1), "sha256"},
		{"bad url", strings.Replace(good, "http://10.0.0.2:8080/images", "ftp://x", 1), "url"},
		{"bad disk", strings.Replace(good, "/dev/vda", "vda", 1), "disk"},
		{"not json", "<html>", "imager job"},
		{"newline", strings.Replace(good, "ceph-1-1", `a\nb`, 1), "line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJob([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseJob(f *testing.F) {
	f.Add([]byte(`{"host":"a","url":"http://x/y","format":"raw","sha256":"` + strings.Repeat("00", 32) + `","seed_url":"http://x/s/"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := ParseJob(b)
		if err == nil {
			if err := j.Validate(); err != nil {
				t.Fatalf("parsed job does not validate: %v", err)
			}
			SeedConfig(j)
		}
	})
}

// TestClient runs the job protocol against a server that implements the
// bootstrapd side of the contract.
func TestClient(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	var progress, done []map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("GET /imager/job", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("mac") != mac.String() {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(Job{Host: "ceph-1", URL: "http://g/i.raw", Format: "raw", SHA256: strings.Repeat("00", 32), SeedURL: "http://g/nocloud/ceph-1/", InstanceID: "x"})
	})
	rec := func(dst *[]map[string]any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var m map[string]any
			json.NewDecoder(r.Body).Decode(&m)
			*dst = append(*dst, m)
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /imager/progress", rec(&progress))
	mux.HandleFunc("POST /imager/done", rec(&done))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	c := &Client{Base: srv.URL + "/", MAC: mac}
	j, err := c.Job(ctx)
	if err != nil || j.Host != "ceph-1" {
		t.Fatalf("job = %+v, %v", j, err)
	}
	other, _ := net.ParseMAC("52:54:00:00:00:01")
	if _, err := (&Client{Base: srv.URL, MAC: other}).Job(ctx); !errors.Is(err, ErrNoJob) {
		t.Fatalf("unknown MAC: err = %v, want ErrNoJob", err)
	}
	if err := c.Progress(ctx, 10, 20); err != nil {
		t.Fatal(err)
	}
	if err := c.Done(ctx, errors.New("sha256 mismatch")); err != nil {
		t.Fatal(err)
	}
	if err := c.Done(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 1 || progress[0]["written"] != float64(10) || progress[0]["mac"] != mac.String() {
		t.Fatalf("progress = %v", progress)
	}
	if len(done) != 2 || done[0]["ok"] != false || done[0]["error"] != "sha256 mismatch" || done[1]["ok"] != true {
		t.Fatalf("done = %v", done)
	}
}

func TestPickDisk(t *testing.T) {
	mk := func(t *testing.T, disks map[string][2]string) string {
		d := t.TempDir()
		for n, v := range disks {
			os.MkdirAll(filepath.Join(d, n), 0o755)
			os.WriteFile(filepath.Join(d, n, "removable"), []byte(v[0]+"\n"), 0o644)
			os.WriteFile(filepath.Join(d, n, "size"), []byte(v[1]+"\n"), 0o644)
		}
		return d
	}
	tests := []struct {
		name    string
		disks   map[string][2]string
		want    string
		result  string
		wantErr string
	}{
		{"only disk", map[string][2]string{"vda": {"0", "100"}, "loop0": {"0", "100"}, "sr0": {"1", "100"}}, "", "/dev/vda", ""},
		{"removable ignored", map[string][2]string{"sda": {"0", "100"}, "sdb": {"1", "100"}}, "", "/dev/sda", ""},
		{"empty ignored", map[string][2]string{"nvme0n1": {"0", "100"}, "vdb": {"0", "0"}}, "", "/dev/nvme0n1", ""},
		{"ambiguous", map[string][2]string{"sda": {"0", "100"}, "sdb": {"0", "100"}}, "", "", "several non-removable disks (sda, sdb)"},
		{"none", map[string][2]string{"loop0": {"0", "100"}}, "", "", "no non-removable disk"},
		{"named", map[string][2]string{"sda": {"0", "100"}, "sdb": {"0", "100"}}, "/dev/sdb", "/dev/sdb", ""},
		{"named missing", map[string][2]string{"sda": {"0", "100"}}, "/dev/nvme0n1", "", "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PickDisk(mk(t, tt.disks), tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.result {
				t.Fatalf("PickDisk = %q, %v; want %q", got, err, tt.result)
			}
		})
	}
}

func TestPartitionDevice(t *testing.T) {
	for _, tt := range []struct {
		disk string
		n    int
		want string
	}{{"/dev/vda", 1, "/dev/vda1"}, {"/dev/sda", 2, "/dev/sda2"}, {"/dev/nvme0n1", 1, "/dev/nvme0n1p1"}, {"/dev/mmcblk0", 3, "/dev/mmcblk0p3"}} {
		if got := PartitionDevice(tt.disk, tt.n); got != tt.want {
			t.Errorf("PartitionDevice(%q, %d) = %q, want %q", tt.disk, tt.n, got, tt.want)
		}
	}
}

// TestRootPartition lays out real disks with sfdisk and mkfs.ext4 (the
// independent writers) and checks which partition the imager would seed.
func TestRootPartition(t *testing.T) {
	for _, p := range []string{"sfdisk", "mkfs.ext4", "mkfs.vfat"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing (make deps)", p)
			}
			t.Skipf("%s missing (make deps)", p)
		}
	}
	tests := []struct {
		name   string
		label  string
		layout string // sfdisk input
		ext4   []int  // partitions (1-based) formatted ext4, others vfat
		want   int
	}{
		{"mbr one ext4", "dos", "start=2048, size=16384, type=83, bootable\n", []int{1}, 1},
		{"mbr esp + big ext4", "dos", "start=2048, size=8192, type=ef\nstart=10240, size=20480, type=83\n", []int{2}, 2},
		{"mbr two ext4 largest", "dos", "start=2048, size=8192, type=83\nstart=10240, size=20480, type=83\n", []int{1, 2}, 2},
		{"gpt root type wins", "gpt", "start=2048, size=20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nstart=22528, size=8192, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n", []int{1, 2}, 2},
		{"gpt esp + ext4", "gpt", "start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=10240, size=20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", []int{2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "disk")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Truncate(disk, 16<<20)
			cmd := exec.Command("sfdisk", "-q", disk)
			cmd.Stdin = strings.NewReader("label: " + tt.label + "\n" + tt.layout)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v: %s", err, out)
			}
			f, _ := os.Open(disk)
			parts, err := Partitions(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				isExt4 := false
				for _, e := range tt.ext4 {
					isExt4 = isExt4 || e == p.Number
				}
				var out []byte
				var err error
				if isExt4 {
					out, err = exec.Command("mkfs.ext4", "-q", "-F", "-E", "offset="+fmtInt(int(p.Start)), disk, fmtInt(int(p.Size/1024))+"k").CombinedOutput()
				} else {
					part := disk + ".vfat"
					out, err = exec.Command("mkfs.vfat", "-C", part, fmtInt(int(p.Size/1024))).CombinedOutput()
					if err == nil {
						b, _ := os.ReadFile(part)
						f, _ := os.OpenFile(disk, os.O_WRONLY, 0)
						f.WriteAt(b, p.Start)
						f.Close()
						os.Remove(part)
					}
				}
				if err != nil {
					t.Fatalf("format partition %d: %v: %s", p.Number, err, out)
				}
			}
			f, _ = os.Open(disk)
			defer f.Close()
			root, err := RootPartition(f)
			if err != nil {
				t.Fatal(err)
			}
			if root.Number != tt.want {
				t.Fatalf("root partition %d (%+v), want %d", root.Number, root, tt.want)
			}
		})
	}
}

func FuzzPartitions(f *testing.F) {
	mbr := make([]byte, 1024)
	mbr[510], mbr[511] = 0x55, 0xAA
	mbr[446+4] = 0x83
	mbr[446+8] = 1
	mbr[446+12] = 1
	f.Add(mbr)
	gpt := bytes.Clone(mbr)
	gpt[446+4] = 0xEE
	f.Add(gpt)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		Partitions(r)
		RootPartition(r)
	})
}

func TestWriteSeed(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib/cloud/instances/old"), 0o755)
	job := Job{Host: "ceph-1", SeedURL: "http://10.0.0.2:8080/nocloud/ceph-1/", InstanceID: "ceph-1-7"}
	if err := WriteSeed(root, job); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, SeedPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"datasource_list: [NoCloud]", `seedfrom: "http://10.0.0.2:8080/nocloud/ceph-1/"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("seed lacks %q:\n%s", want, b)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/cloud")); !os.IsNotExist(err) {
		t.Errorf("old cloud-init state kept: %v", err)
	}
	// cloud-init itself must accept the file (the real reader).
	if _, err := exec.LookPath("python3"); err == nil {
		out, err := exec.Command("python3", "-c", `import sys,yaml
d=yaml.safe_load(open(sys.argv[1]))
assert d["datasource_list"]==["NoCloud"], d
print(d["datasource"]["NoCloud"]["seedfrom"])`, filepath.Join(root, SeedPath)).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != job.SeedURL {
			t.Fatalf("python yaml read: %v: %s", err, out)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tt := range []struct {
		in, bootstrap, onfail, err string
	}{
		{"console=ttyS0,115200 gate.bootstrap=http://10.0.0.2:8080", "http://10.0.0.2:8080", "poweroff", ""},
		{"gate.bootstrap=http://g gate.onfail=wait", "http://g", "wait", ""},
		{"console=tty0", "", "", "no gate.bootstrap"},
		{"gate.bootstrap=ftp://g", "", "", "not an http"},
		{"gate.bootstrap=http://g gate.onfail=dance", "", "", "gate.onfail"},
	} {
		c, err := ParseCmdline(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || c.Bootstrap != tt.bootstrap || c.OnFail != tt.onfail {
			t.Errorf("%q: %+v, %v", tt.in, c, err)
		}
	}
}

// BenchmarkWrite measures the imager's stream (HTTP over loopback, hash,
// zstd, write to a file) on this machine.
func BenchmarkWrite(b *testing.B) {
	img := bytes.Repeat(testImage(b), 8) // 24 MiB
	z := zst(b, img)
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "img.raw"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "img.raw.zst"), z, 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	for _, c := range []struct{ name, path, format, sha string }{
		{"raw", "/img.raw", "raw", sum(img)}, {"zstd", "/img.raw.zst", "zstd", sum(z)},
	} {
		b.Run(c.name, func(b *testing.B) {
			disk, err := os.Create(filepath.Join(b.TempDir(), "disk"))
			if err != nil {
				b.Fatal(err)
			}
			defer disk.Close()
			job := Job{URL: srv.URL + c.path, Format: c.format, SHA256: c.sha}
			b.SetBytes(int64(len(img)))
			for i := 0; i < b.N; i++ {
				if _, err := Write(context.Background(), job, disk, 32<<20, WriteOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestConsoles(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"console=ttyS0,115200 console=tty0 gate.bootstrap=http://g", "/dev/ttyS0 /dev/tty0"},
		{"quiet", ""},
		{"console=ttyS0 console=ttyS0,9600 console=../x", "/dev/ttyS0"},
	} {
		if got := strings.Join(Consoles(tt.in), " "); got != tt.want {
			t.Errorf("Consoles(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
