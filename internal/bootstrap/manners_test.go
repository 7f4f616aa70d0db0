package bootstrap

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// The imager's endpoints check the address and the MAC, as NoCloud does:
// a machine at ceph-1's address with another MAC gets no job and cannot
// report ceph-1 re-imaged.
func TestImagerNeedsAddressAndMAC(t *testing.T) {
	f := newFixture(t, t.TempDir())
	const ceph = "10.9.0.11"
	f.want(f.do("POST", "/api/hosts/ceph-1/reimage", "10.9.0.50", "", "Authorization", "Bearer tok"), 200, "flagged")
	f.neigh[netip.MustParseAddr(ceph)] = "52:54:00:00:99:99" // an impostor on ceph-1's address
	f.want(f.do("GET", "/imager/job?mac=52:54:00:00:01:01", ceph, ""), 403, "neighbour MAC 52:54:00:00:99:99")
	f.want(f.do("POST", "/imager/progress", ceph, `{"mac":"52:54:00:00:01:01","written":1,"total":2}`), 403, "neighbour MAC")
	f.want(f.do("POST", "/imager/done", ceph, `{"mac":"52:54:00:00:01:01","ok":true}`), 403, "neighbour MAC")
	delete(f.neigh, netip.MustParseAddr(ceph)) // no neighbour entry at all
	f.want(f.do("GET", "/imager/job?mac=52:54:00:00:01:01", ceph, ""), 403, "not ceph-1's")
	if st := f.s.Store.Get("ceph-1"); st.Phase != PhaseFlagged {
		t.Fatalf("the impostor changed ceph-1's state: %+v", st)
	}
	f.neigh[netip.MustParseAddr(ceph)] = "52:54:00:00:01:01"
	f.want(f.do("GET", "/imager/job?mac=52:54:00:00:01:01", ceph, ""), 200, "ceph-1")
}

// /assets/ and /images/ serve files only: no directory listing, and a
// symbolic link out of them is not found (not a server error).
func TestFilesOnly(t *testing.T) {
	f := newFixture(t, t.TempDir())
	os.WriteFile(filepath.Join(f.s.Images, "g.raw.zst"), []byte("image"), 0o644)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	os.Symlink(outside, filepath.Join(f.s.Assets, "out"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(f.s.Images, "s"))
	os.Symlink("imager/vmlinuz", filepath.Join(f.s.Assets, "inside")) // inside the root: fine
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/assets/", 404, ""},
		{"/assets/imager/", 404, ""},
		{"/assets/imager", 404, ""},
		{"/images/", 404, ""},
		{"/assets/out/secret", 404, ""},
		{"/images/s", 404, ""},
		{"/assets/imager/vmlinuz", 200, "0123456789"},
		{"/assets/inside", 200, "0123456789"},
		{"/images/g.raw.zst", 200, "image"},
	} {
		w := f.do("GET", tc.path, "10.9.0.50", "")
		if w.Code != tc.code || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, w.Code, w.Body.String(), tc.code, tc.body)
		}
	}
}

// The API's scheme is case-insensitive (RFC 9110 11.1).
func TestBearerSchemeCase(t *testing.T) {
	f := newFixture(t, t.TempDir())
	for _, h := range []string{"Bearer tok", "bearer tok", "BEARER tok", "Bearer  tok "} {
		f.want(f.do("GET", "/api/hosts", "10.9.0.50", "", "Authorization", h), 200, "ceph-1")
	}
	for _, h := range []string{"Basic tok", "Bearertok", "tok", "Bearer tok2"} {
		f.want(f.do("GET", "/api/hosts", "10.9.0.50", "", "Authorization", h), 401, "token")
	}
}
