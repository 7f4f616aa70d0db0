package bootstrap

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"strings"
	"time"

	"gate/config"
	"gate/internal/hostcmd"
	"gate/internal/imager"
	"gate/internal/nocloud"
	"gate/internal/powerstate"
)

// Server is bootstrapd's HTTP side.
type Server struct {
	Config *config.Config
	Store  *Store
	// Base is "http://<gate>:<port>", as hosts reach it.
	Base string
	// GateIP is the gate's LAN address.
	GateIP netip.Addr
	// Assets is the directory served under /assets/ (ipxe/, imager/).
	Assets string
	// Images, if set, is a directory served under /images/ (golden images
	// the roles' image URLs may point to).
	Images string
	// Token is the API bearer token (bootstrap.api_token).
	Token []byte
	// Neighbour returns the MAC the kernel's neighbour table holds for
	// ip; nil reads /proc/net/arp.
	Neighbour func(ip netip.Addr) (net.HardwareAddr, bool)
	// NUTPassword returns a NUT user's password ("" if none).
	NUTPassword func(user string) string
	// ShutdownKey returns the authorized_keys line (hostcmd.AuthorizedKey)
	// of the shutdown key a host's shutdown.ssh_key names ("" if none):
	// cloud-init installs it with the forced command.
	ShutdownKey func(ref config.Secret) string
	// PowerFile is upsd's power state (internal/powerstate), shown in
	// GET /api/hosts; "" or absent: none.
	PowerFile string
	Log       *slog.Logger
}

// Handler returns the HTTP handler.
func (s *Server) Handler() (http.Handler, error) {
	root, err := os.OpenRoot(s.Assets)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: assets %s: %w", s.Assets, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", serveFiles(root)))
	if s.Images != "" {
		if err := os.MkdirAll(s.Images, 0o755); err != nil {
			return nil, fmt.Errorf("bootstrap: images: %w", err)
		}
		img, err := os.OpenRoot(s.Images)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: images %s: %w", s.Images, err)
		}
		mux.Handle("GET /images/", http.StripPrefix("/images/", serveFiles(img)))
	}
	mux.HandleFunc("GET /boot.ipxe", s.bootIPXE)
	mux.HandleFunc("GET /ipxe/{mac}", s.hostIPXE)
	mux.HandleFunc("GET /imager/job", s.imagerJob)
	mux.HandleFunc("POST /imager/progress", s.imagerProgress)
	mux.HandleFunc("POST /imager/done", s.imagerDone)
	mux.HandleFunc("POST /nocloud/phone-home", s.phoneHome)
	mux.HandleFunc("POST /nocloud/{host}/phone-home", s.phoneHome)
	mux.HandleFunc("GET /nocloud/{file}", s.nocloudFile)
	mux.HandleFunc("GET /nocloud/{host}/{file}", s.nocloudFile)
	mux.HandleFunc("GET /api/hosts", s.auth(s.apiHosts))
	mux.HandleFunc("POST /api/hosts/{name}/reimage", s.auth(s.apiReimage))
	mux.HandleFunc("DELETE /api/hosts/{name}/reimage", s.auth(s.apiCancel))
	return mux, nil
}

// serveFiles serves the regular files under root, and nothing else: no
// directory listings, and a name that does not resolve inside root (a
// symbolic link out of it) is simply not found.
func serveFiles(root *os.Root) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			http.NotFound(w, r)
			return
		}
		f, err := root.Open(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, name, fi.ModTime(), f)
	})
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) hostByMAC(mac net.HardwareAddr) *config.Host {
	for i := range s.Config.Hosts {
		for _, m := range s.Config.Hosts[i].MACs {
			if strings.EqualFold(net.HardwareAddr(m).String(), mac.String()) {
				return &s.Config.Hosts[i]
			}
		}
	}
	return nil
}

func (s *Server) hostByName(name string) *config.Host {
	for i := range s.Config.Hosts {
		if s.Config.Hosts[i].Name == name {
			return &s.Config.Hosts[i]
		}
	}
	return nil
}

// KnownMAC reports whether mac is a host's (for the proxyDHCP server).
func (s *Server) KnownMAC(mac net.HardwareAddr) bool { return s.hostByMAC(mac) != nil }

func sourceIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func parseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
	if err != nil || len(m) != 6 {
		return nil, fmt.Errorf("%q is not a MAC address", s)
	}
	return m, nil
}

// --- iPXE -------------------------------------------------------------

func (s *Server) bootIPXE(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "#!ipxe\nchain %s/ipxe/${net0/mac:hexhyp}\n", s.Base)
}

func (s *Server) asset(u string) string {
	if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		return u
	}
	return s.Base + "/assets/" + strings.TrimLeft(u, "/")
}

func (s *Server) hostIPXE(w http.ResponseWriter, r *http.Request) {
	mac, err := parseMAC(r.PathValue("mac"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := s.hostByMAC(mac)
	if h == nil {
		http.Error(w, "unknown MAC "+mac.String(), http.StatusNotFound)
		return
	}
	// Fetching a script changes the host's state (last boot; an installer
	// host moves to "installing"): only the host itself may, as the
	// neighbour table shows it (any of its NICs).
	src := sourceIP(r)
	if got, ok := s.neighbour(src); !ok || s.hostByMAC(got) == nil || s.hostByMAC(got).Name != h.Name {
		s.log().Warn("ipxe script refused: the requester is not the host", "host", h.Name, "from", src, "neighbour", got)
		http.Error(w, fmt.Sprintf("%s (neighbour MAC %s) is not %s", src, got, h.Name), http.StatusForbidden)
		return
	}
	role := s.Config.Roles[h.Role]
	var script, to string
	st, err := s.Store.Update(h.Name, func(st *HostState, now time.Time) (bool, error) {
		st.LastBoot = now
		switch {
		case st.Phase == PhaseFlagged && role != nil && role.Image != nil:
			to = "imager"
			script = fmt.Sprintf("#!ipxe\necho gate: re-imaging %s\nkernel %s/assets/imager/vmlinuz initrd=initramfs.gz console=ttyS0,115200 console=tty0 gate.bootstrap=%s\ninitrd %s/assets/imager/initramfs.gz\nboot\n",
				h.Name, s.Base, s.Base, s.Base)
		case st.Phase == PhaseFlagged && role != nil && role.Installer != nil:
			to = "installer"
			st.Phase = PhaseInstalling // the installer's reboot goes to disk: no loop
			in := role.Installer
			// initrd=NAME: UEFI kernels' EFI stub loads the initrd by name
			// from iPXE's image list.
			script = fmt.Sprintf("#!ipxe\necho gate: installing %s\nkernel %s initrd=%s %s ds=nocloud-net;s=%s/nocloud/\ninitrd %s\nboot\n",
				h.Name, s.asset(in.Kernel), path.Base(in.Initrd), in.Args, s.Base, s.asset(in.Initrd))
		default:
			to = "disk"
			script = "#!ipxe\necho gate: booting " + h.Name + " from its disk\n" + localBoot(h.BootLocal)
		}
		st.LastBootTo = to
		return true, nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.log().Info("ipxe script", "host", h.Name, "mac", mac.String(), "to", to, "phase", st.Phase, "from", r.RemoteAddr)
	io.WriteString(w, script)
}

func localBoot(mode string) string {
	switch mode {
	case "sanboot":
		return "sanboot --no-describe --drive 0x80\n"
	case "exit":
		return "exit\n"
	}
	return "iseq ${platform} efi && exit ||\nsanboot --no-describe --drive 0x80 || exit\n"
}

// --- imager -----------------------------------------------------------

// hostFor finds the flagged-or-not host of mac and checks the request
// comes from its address.
func (s *Server) hostFor(w http.ResponseWriter, r *http.Request, macStr string) *config.Host {
	mac, err := parseMAC(macStr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil
	}
	h := s.hostByMAC(mac)
	if h == nil {
		http.Error(w, "unknown MAC "+mac.String(), http.StatusNotFound)
		return nil
	}
	src := sourceIP(r)
	if h.IP.IsValid() && src != h.IP {
		s.log().Warn("imager request from the wrong address", "host", h.Name, "from", src, "want", h.IP)
		s.noteWrongAddress(h, mac, src)
		http.Error(w, fmt.Sprintf("MAC %s is %s's, whose address is %s, not %s", mac, h.Name, h.IP, src), http.StatusForbidden)
		return nil
	}
	// The address alone is not the host (as for NoCloud): the neighbour
	// table must hold one of its MACs for it.
	if got, ok := s.neighbour(src); !ok || s.hostByMAC(got) == nil || s.hostByMAC(got).Name != h.Name {
		s.log().Warn("imager request refused: address and MAC disagree", "host", h.Name, "from", src, "neighbour", got)
		http.Error(w, fmt.Sprintf("%s is %s's address but its neighbour MAC %s is not %s's", src, h.Name, got, h.Name), http.StatusForbidden)
		return nil
	}
	return h
}

// noteWrongAddress records, for a flagged host whose own imager (its MAC
// is the neighbour table's for src) asks from another address than the
// site file's, why it cannot be re-imaged: the imager is refused and
// cannot report, so `gate hosts` would otherwise show nothing. Anyone
// else's request changes nothing.
func (s *Server) noteWrongAddress(h *config.Host, mac net.HardwareAddr, src netip.Addr) {
	if got, ok := s.neighbour(src); !ok || !strings.EqualFold(got.String(), mac.String()) {
		return
	}
	msg := fmt.Sprintf("the imager got the address %s, not %s's %s: reserve %s for %s on the LAN's DHCP server", src, h.Name, h.IP, h.IP, mac)
	s.Store.Update(h.Name, func(st *HostState, now time.Time) (bool, error) {
		if st.Phase != PhaseFlagged || st.LastError == msg {
			return false, nil // one flash write per new reason
		}
		st.LastError, st.ErrorAt, st.LastResult = msg, now, "failed: "+msg
		return true, nil
	})
}

func (s *Server) imagerJob(w http.ResponseWriter, r *http.Request) {
	h := s.hostFor(w, r, r.URL.Query().Get("mac"))
	if h == nil {
		return
	}
	st := s.Store.Get(h.Name)
	if st.Phase != PhaseFlagged {
		http.Error(w, h.Name+" is not flagged for re-imaging", http.StatusNotFound)
		return
	}
	role := s.Config.Roles[h.Role]
	if role == nil || role.Image == nil {
		http.Error(w, "role "+h.Role+" of "+h.Name+" has no image", http.StatusNotFound)
		return
	}
	format := role.Image.Format
	if format == "" {
		format = "raw"
	}
	job := imager.Job{Host: h.Name, Disk: h.Disk, URL: s.asset(role.Image.URL), Format: format,
		SHA256: strings.ToLower(role.Image.SHA256), SeedURL: s.Base + "/nocloud/", InstanceID: st.InstanceID}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(job)
	s.log().Info("imager job", "host", h.Name, "instance", st.InstanceID)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(v); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (s *Server) imagerProgress(w http.ResponseWriter, r *http.Request) {
	var p struct {
		MAC     string `json:"mac"`
		Written int64  `json:"written"`
		Total   int64  `json:"total"`
	}
	if !decode(w, r, &p) {
		return
	}
	h := s.hostFor(w, r, p.MAC)
	if h == nil {
		return
	}
	s.Store.Update(h.Name, func(st *HostState, now time.Time) (bool, error) {
		st.Written, st.Total, st.ProgressAt = p.Written, p.Total, now
		return false, nil // progress is not worth a flash write
	})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) imagerDone(w http.ResponseWriter, r *http.Request) {
	var p struct {
		MAC   string `json:"mac"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if !decode(w, r, &p) {
		return
	}
	h := s.hostFor(w, r, p.MAC)
	if h == nil {
		return
	}
	_, err := s.Store.Update(h.Name, func(st *HostState, now time.Time) (bool, error) {
		if st.Phase == PhaseWritten && p.OK {
			// The imager sends its report again when our answer was
			// lost: the same success, already recorded.
			return false, nil
		}
		if st.Phase != PhaseFlagged {
			return false, fmt.Errorf("%s is not being re-imaged (phase %q)", h.Name, st.Phase)
		}
		if p.OK {
			st.Phase = PhaseWritten
			st.LastError = ""
			st.LastResult = "written"
		} else {
			st.LastError = p.Error
			st.ErrorAt = now
			st.LastResult = "failed: " + p.Error
		}
		return true, nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	s.log().Info("imager done", "host", h.Name, "ok", p.OK, "error", p.Error)
	w.WriteHeader(http.StatusNoContent)
}

// --- NoCloud ----------------------------------------------------------

// identify finds the host by the request's source address and the MAC
// the neighbour table holds for it: both must agree.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) *config.Host {
	src := sourceIP(r)
	var h *config.Host
	for i := range s.Config.Hosts {
		if s.Config.Hosts[i].IP == src {
			h = &s.Config.Hosts[i]
		}
	}
	if h == nil {
		http.Error(w, src.String()+" is no host's address", http.StatusForbidden)
		return nil
	}
	mac, ok := s.neighbour(src)
	if !ok {
		http.Error(w, "no neighbour entry for "+src.String(), http.StatusForbidden)
		return nil
	}
	if o := s.hostByMAC(mac); o == nil || o.Name != h.Name {
		s.log().Warn("nocloud refused: address and MAC disagree", "from", src, "mac", mac, "host", h.Name)
		http.Error(w, fmt.Sprintf("%s is %s's address but MAC %s is not its", src, h.Name, mac), http.StatusForbidden)
		return nil
	}
	if name := r.PathValue("host"); name != "" && name != h.Name {
		http.Error(w, "this is "+h.Name+", not "+name, http.StatusForbidden)
		return nil
	}
	return h
}

// neighbour returns the MAC the neighbour table holds for ip (Neighbour,
// or the kernel's when nil).
func (s *Server) neighbour(ip netip.Addr) (net.HardwareAddr, bool) {
	if s.Neighbour != nil {
		return s.Neighbour(ip)
	}
	return procARP(ip)
}

// procARP reads the kernel's IPv4 neighbour table.
func procARP(ip netip.Addr) (net.HardwareAddr, bool) {
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		return nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 4 && fs[0] == ip.String() && fs[2] != "0x0" {
			if m, err := net.ParseMAC(fs[3]); err == nil {
				return m, true
			}
		}
	}
	return nil, false
}

// Facts assembles what a host's templates see.
func (s *Server) Facts(h *config.Host, instanceID string) *nocloud.Facts {
	c := s.Config
	f := &nocloud.Facts{Name: h.Name, Domain: c.Site.Domain, IP: h.IP.String(), Prefix: c.LAN.Subnet.Bits(),
		Gateway: c.LAN.Gateway.String(), Role: h.Role, Disk: h.Disk, InstanceID: instanceID,
		GateURL: s.Base, GateIP: s.GateIP.String()}
	if c.Site.Domain != "" {
		f.FQDN = h.Name + "." + c.Site.Domain
	}
	for _, d := range c.LAN.DNS {
		f.DNS = append(f.DNS, d.String())
	}
	for _, m := range h.MACs {
		f.MACs = append(f.MACs, net.HardwareAddr(m).String())
	}
	if r := c.Roles[h.Role]; r != nil {
		f.K3s = r.K3s
	}
	if c.Bastion != nil {
		for _, u := range c.Bastion.Users {
			for _, k := range u.Keys {
				f.SSHKeys = append(f.SSHKeys, strings.TrimSpace(k.String()))
			}
		}
	}
	if c.UPS != nil && h.Shutdown.Method != "ssh" && s.NUTPassword != nil {
		if pw := s.NUTPassword(h.Shutdown.NUTUser); pw != "" {
			name := c.UPS.Name
			if name == "" {
				name = "ups"
			}
			f.NUTMonitor = nocloud.MonitorLine(name, s.GateIP.String(), h.Shutdown.NUTUser, pw)
		}
	}
	if h.Shutdown.SSHKey != "" && s.ShutdownKey != nil {
		if line := s.ShutdownKey(h.Shutdown.SSHKey); line != "" {
			shutdown := ""
			if h.Shutdown.Method == "ssh" {
				shutdown = h.Shutdown.Command
			}
			f.GateKey, f.GateUser = line, h.Shutdown.SSHUser
			f.GateCommands = hostcmd.Allowed(h.Name, c.PreSteps(h.Shutdown.Group), shutdown)
		}
	}
	return f
}

func (s *Server) nocloudFile(w http.ResponseWriter, r *http.Request) {
	h := s.identify(w, r)
	if h == nil {
		return
	}
	st := s.Store.Get(h.Name)
	id := st.InstanceID
	if id == "" {
		id = h.Name // never re-imaged by the gate: a stable id
	}
	var t nocloud.Templates
	if role := s.Config.Roles[h.Role]; role != nil {
		t = nocloud.Templates{UserData: role.CloudInit.UserData, VendorData: role.CloudInit.VendorData, NetworkConfig: role.CloudInit.NetworkConfig}
	}
	files, err := nocloud.Render(t, s.Facts(h, id))
	if err != nil {
		s.log().Error("nocloud render", "host", h.Name, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body, ok := files.Get(r.PathValue("file"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.log().Info("nocloud", "host", h.Name, "file", r.PathValue("file"))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, body)
}

func (s *Server) phoneHome(w http.ResponseWriter, r *http.Request) {
	h := s.identify(w, r)
	if h == nil {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	r.ParseForm()
	got := r.PostForm.Get("instance_id")
	st, err := s.Store.Update(h.Name, func(st *HostState, now time.Time) (bool, error) {
		if got != "" && st.InstanceID != "" && got != st.InstanceID {
			return false, fmt.Errorf("instance %q is not %s's current install %q", got, h.Name, st.InstanceID)
		}
		st.Phase = PhaseIdle
		st.InstalledAt = now
		st.LastResult = "ok"
		st.LastError = ""
		return true, nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	s.log().Info("phone-home: installed", "host", h.Name, "instance", st.InstanceID)
	w.WriteHeader(http.StatusOK)
}

// --- API --------------------------------------------------------------

func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// RFC 9110 11.1: the scheme is case-insensitive.
		scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		ok := strings.EqualFold(scheme, "Bearer")
		tok = strings.TrimSpace(tok)
		if len(s.Token) == 0 || !ok || subtle.ConstantTimeCompare([]byte(tok), s.Token) != 1 {
			http.Error(w, "missing or wrong API token", http.StatusUnauthorized)
			return
		}
		next(w, r)
	}
}

// HostStatus is one row of GET /api/hosts.
type HostStatus struct {
	Name string   `json:"name"`
	IP   string   `json:"ip"`
	MACs []string `json:"macs"`
	Role string   `json:"role"`
	HostState
	// Power is the host's power state as upsd knows it, and Return the
	// return plan's phase after an outage (internal/powerstate).
	Power  *powerstate.Host `json:"power,omitempty"`
	Return string           `json:"return,omitempty"`
}

// power reads upsd's power state file, if there is one.
func (s *Server) power() powerstate.State {
	if s.PowerFile == "" {
		return powerstate.State{}
	}
	ps, err := powerstate.Read(s.PowerFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log().Warn("upsd's power state", "err", err)
	}
	return ps
}

func (s *Server) status(h *config.Host) HostStatus {
	ps := s.power()
	hs := HostStatus{Name: h.Name, IP: h.IP.String(), Role: h.Role, HostState: s.Store.Get(h.Name), Return: ps.Return}
	if p, ok := ps.Hosts[h.Name]; ok {
		hs.Power = &p
	}
	for _, m := range h.MACs {
		hs.MACs = append(hs.MACs, net.HardwareAddr(m).String())
	}
	return hs
}

func (s *Server) apiHosts(w http.ResponseWriter, r *http.Request) {
	out := []HostStatus{}
	for i := range s.Config.Hosts {
		out = append(out, s.status(&s.Config.Hosts[i]))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (s *Server) apiReimage(w http.ResponseWriter, r *http.Request) {
	h := s.hostByName(r.PathValue("name"))
	if h == nil {
		http.Error(w, "no host "+r.PathValue("name")+" in the site file", http.StatusNotFound)
		return
	}
	role := s.Config.Roles[h.Role]
	if role == nil || (role.Image == nil && role.Installer == nil) {
		http.Error(w, "role "+h.Role+" of "+h.Name+" has neither image nor installer", http.StatusConflict)
		return
	}
	_, err := s.Store.Update(h.Name, func(st *HostState, now time.Time) (bool, error) {
		st.Phase = PhaseFlagged
		st.FlaggedAt = now
		st.InstanceID = fmt.Sprintf("%s-%s", h.Name, now.Format("20060102T150405.000Z"))
		st.Written, st.Total, st.LastError = 0, 0, ""
		return true, nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.log().Info("flagged for re-imaging", "host", h.Name)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.status(h))
}

func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request) {
	h := s.hostByName(r.PathValue("name"))
	if h == nil {
		http.Error(w, "no host "+r.PathValue("name")+" in the site file", http.StatusNotFound)
		return
	}
	_, err := s.Store.Update(h.Name, func(st *HostState, now time.Time) (bool, error) {
		if st.Phase == PhaseIdle {
			return false, nil
		}
		st.Phase = PhaseIdle
		st.LastResult = "cancelled"
		return true, nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.log().Info("re-imaging cancelled", "host", h.Name)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.status(h))
}
