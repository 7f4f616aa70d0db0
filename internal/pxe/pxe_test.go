package pxe

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var known = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

func cfg() *Config {
	return &Config{Server: net.IPv4(10, 0, 0, 2), HTTPBase: "http://10.0.0.2:8080",
		Known: func(m net.HardwareAddr) bool { return m.String() == known.String() }}
}

func req(t *testing.T, mac net.HardwareAddr, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	r, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(mt)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAnswer(t *testing.T) {
	unknown := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	pxe := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	arch := func(a iana.Arch) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientArch(a)) }
	guid := dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(97), append([]byte{0}, make([]byte, 16)...)))
	for _, tc := range []struct {
		name string
		r    *dhcpv4.DHCPv4
		file string // "" = ignored
		typ  dhcpv4.MessageType
	}{
		{"bios", req(t, known, dhcpv4.MessageTypeDiscover, pxe, arch(0), guid), "undionly.kpxe", dhcpv4.MessageTypeOffer},
		{"bios no 93", req(t, known, dhcpv4.MessageTypeDiscover, pxe), "undionly.kpxe", dhcpv4.MessageTypeOffer},
		{"uefi x64", req(t, known, dhcpv4.MessageTypeDiscover, pxe, arch(7)), "snponly.efi", dhcpv4.MessageTypeOffer},
		{"uefi old 9", req(t, known, dhcpv4.MessageTypeDiscover, pxe, arch(9)), "snponly.efi", dhcpv4.MessageTypeOffer},
		{"uefi 4011 request", req(t, known, dhcpv4.MessageTypeRequest, pxe, arch(7)), "snponly.efi", dhcpv4.MessageTypeAck},
		{"arm64 nothing shipped", req(t, known, dhcpv4.MessageTypeDiscover, pxe, arch(11)), "", 0},
		{"ipxe user class", req(t, known, dhcpv4.MessageTypeDiscover, pxe, arch(0), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))), "http://10.0.0.2:8080/ipxe/52-54-00-12-34-56", dhcpv4.MessageTypeOffer},
		{"ipxe 175", req(t, known, dhcpv4.MessageTypeDiscover, pxe, arch(7), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{1, 1, 1}))), "http://10.0.0.2:8080/ipxe/52-54-00-12-34-56", dhcpv4.MessageTypeOffer},
		{"http boot", req(t, known, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003000")), arch(16)), "http://10.0.0.2:8080/assets/ipxe/snponly.efi", dhcpv4.MessageTypeOffer},
		{"unknown mac", req(t, unknown, dhcpv4.MessageTypeDiscover, pxe, arch(0)), "", 0},
		{"not pxe", req(t, known, dhcpv4.MessageTypeDiscover), "", 0},
		{"release", req(t, known, dhcpv4.MessageTypeRelease, pxe), "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Answer(cfg(), tc.r)
			if tc.file == "" {
				if d.Reply != nil {
					t.Fatalf("answered %q, want ignored", d.File)
				}
				return
			}
			if d.Reply == nil {
				t.Fatalf("ignored: %s", d.Reason)
			}
			rep := d.Reply
			if rep.BootFileName != tc.file || rep.MessageType() != tc.typ {
				t.Fatalf("file %q type %s, want %q %s", rep.BootFileName, rep.MessageType(), tc.file, tc.typ)
			}
			if !rep.YourIPAddr.IsUnspecified() || !rep.ServerIPAddr.Equal(net.IPv4(10, 0, 0, 2)) || !rep.ServerIdentifier().Equal(net.IPv4(10, 0, 0, 2)) {
				t.Fatalf("addresses: yiaddr %v siaddr %v 54 %v", rep.YourIPAddr, rep.ServerIPAddr, rep.ServerIdentifier())
			}
			if g := tc.r.GetOneOption(dhcpv4.GenericOptionCode(97)); g != nil && string(rep.GetOneOption(dhcpv4.GenericOptionCode(97))) != string(g) {
				t.Fatal("option 97 not echoed")
			}
			http := strings.HasPrefix(tc.r.ClassIdentifier(), "HTTP")
			if http != (rep.GetOneOption(dhcpv4.GenericOptionCode(43)) == nil) {
				t.Fatalf("option 43 %x for class %q", rep.GetOneOption(dhcpv4.GenericOptionCode(43)), tc.r.ClassIdentifier())
			}
			// The reply must survive a round trip through the wire format.
			if _, err := dhcpv4.FromBytes(rep.ToBytes()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func FuzzAnswer(f *testing.F) {
	r, _ := dhcpv4.New(dhcpv4.WithHwAddr(known), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
	f.Add(r.ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		d := Answer(cfg(), req)
		if d.Reply != nil {
			if d.Reply.ClientHWAddr.String() != known.String() {
				t.Fatalf("answered unknown MAC %v", d.Reply.ClientHWAddr)
			}
			d.Reply.ToBytes()
		}
	})
}

func TestAnswerFull(t *testing.T) {
	c := cfg()
	p := &Pool{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Start: netip.MustParseAddr("10.0.0.100"), End: netip.MustParseAddr("10.0.0.101"),
		Router: netip.MustParseAddr("10.0.0.1"), Lease: time.Hour,
		Static: func(m net.HardwareAddr) (netip.Addr, bool) {
			return netip.MustParseAddr("10.0.0.11"), m.String() == known.String()
		}}
	now := time.Now()
	pxe := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	d := AnswerFull(c, p, req(t, known, dhcpv4.MessageTypeDiscover, pxe), now)
	if d.Reply == nil || d.Reply.YourIPAddr.String() != "10.0.0.11" || d.Reply.BootFileName != "undionly.kpxe" || d.Reply.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("known PXE host: %+v", d)
	}
	var macs []net.HardwareAddr
	for i := range 3 {
		macs = append(macs, net.HardwareAddr{2, 0, 0, 0, 0, byte(i)})
	}
	for i, m := range macs[:2] {
		d := AnswerFull(c, p, req(t, m, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(c.Server))), now)
		if d.Reply == nil || d.Reply.MessageType() != dhcpv4.MessageTypeAck || d.Reply.YourIPAddr.String() != fmt.Sprintf("10.0.0.%d", 100+i) || d.Reply.BootFileName != "" {
			t.Fatalf("client %d: %+v", i, d)
		}
	}
	if d := AnswerFull(c, p, req(t, macs[2], dhcpv4.MessageTypeDiscover), now); d.Reply != nil {
		t.Fatalf("exhausted pool offered %v", d.Reply.YourIPAddr)
	}
	d = AnswerFull(c, p, req(t, macs[0], dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 0, 0, 101)))), now)
	if d.Reply == nil || d.Reply.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request of another's address: %+v", d)
	}
	if d := AnswerFull(c, p, req(t, macs[0], dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1)))), now); d.Reply != nil {
		t.Fatal("answered a REQUEST for another server")
	}
}

// RFC 2131 4.3.2: a REQUEST naming another server in option 54 gets no
// answer on either port; on port 67 a REQUEST naming no server neither.
func TestServerIdentifierSilence(t *testing.T) {
	pxe := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016"))
	arch := dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))
	box := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1)))
	us := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 2)))
	for _, tc := range []struct {
		name     string
		port67   bool
		mods     []dhcpv4.Modifier
		answered bool
	}{
		{"67 request naming the box", true, []dhcpv4.Modifier{pxe, arch, box}, false},
		{"67 request naming nobody", true, []dhcpv4.Modifier{pxe, arch}, false},
		{"67 request naming the gate", true, []dhcpv4.Modifier{pxe, arch, us}, true},
		{"4011 request naming the box", false, []dhcpv4.Modifier{pxe, arch, box}, false},
		{"4011 request naming nobody", false, []dhcpv4.Modifier{pxe, arch}, true},
	} {
		r := req(t, known, dhcpv4.MessageTypeRequest, tc.mods...)
		d := Answer(cfg(), r)
		if tc.port67 {
			d = AnswerOn67(cfg(), r)
		}
		if (d.Reply != nil) != tc.answered {
			t.Errorf("%s: answered %v (%s)", tc.name, d.Reply != nil, d.Reason)
		}
	}
	// A DISCOVER on port 67 is still offered.
	if d := AnswerOn67(cfg(), req(t, known, dhcpv4.MessageTypeDiscover, pxe, arch)); d.Reply == nil {
		t.Errorf("discover on 67 ignored: %s", d.Reason)
	}
}
