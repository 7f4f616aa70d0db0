package status

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints a snapshot for a terminal (`gate status`).
func WriteText(out io.Writer, s *Snapshot) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("site %s at %s", s.Site, s.Time.UTC().Format(time.RFC3339))
	if len(s.Errors) > 0 {
		var ks []string
		for k := range s.Errors {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			p("NOT ANSWERING\t%s: %s", k, s.Errors[k])
		}
	}
	if pw := s.Power; pw != nil {
		p("\nPOWER")
		p("ups\t%s\tcharge %s\truntime %s\tload %s\ton battery %s", orDash(pw.Status), optional(pw.Charge, "%.0f%%"), optional(pw.Runtime, "%.0fs"), optional(pw.Load, "%.0f%%"), time.Duration(pw.OnBattery)*time.Second)
		p("plan\t%s", pw.Phase)
		for _, e := range pw.Journal {
			p("  %s\t%s %s\t%s", e.At.UTC().Format(time.RFC3339), e.Step, e.Group, e.Reason)
		}
	}
	if t := s.Tunnel; t != nil {
		p("\nTUNNEL\tactive %s\thub switches %.0f", orDash(t.Active), t.Failovers)
		for _, h := range t.Hubs {
			st := "down"
			if h.Up {
				st = "up"
			}
			p("%s\t%s\thandshake %s\t%s\trx %s\ttx %s", h.Name, st, optional(h.HandshakeAge, "%.0fs ago"), orDash(h.Endpoint), humanBytes(h.RxBytes), humanBytes(h.TxBytes))
		}
	}
	if d := s.DNS; d != nil {
		var as []string
		for _, a := range d.Addresses {
			as = append(as, a.Address)
		}
		p("\nDNS\tpublic address %s\tchanged %s", orDash(strings.Join(as, " ")), when(d.LastChange))
		for _, r := range d.Records {
			e := r.LastError
			if r.Blocked != "" {
				e = "BLOCKED: " + r.Blocked
			}
			p("%s\t%s\t%s\t%s", r.Name, orDash(r.Value), when(r.Updated), e)
		}
	}
	p("\nHOSTS\tIP\tPOWER\tNUT\tLAST PXE BOOT\tRE-IMAGE\tLAST RESULT")
	for _, h := range s.Hosts {
		p("%s\t%s\t%s\t%s\t%s\t%s\t%s", h.Name, h.IP, h.Power, orDash(h.NUT), when(h.LastBoot), orDash(strings.TrimSpace(h.Reimage+" "+h.Progress)), orDash(h.LastResult))
	}
	if b := s.Bastion; b != nil {
		p("\nBASTION\topen channels %s\tconnections %.0f\tauth failures %.0f\tbans %.0f", optional(b.OpenChannels, "%.0f"), b.Connections, b.AuthFailures, b.Bans)
		for _, a := range b.Audit {
			p("  %s\t%s from %s\t→ %s\t%s", a.Time, a.User, a.Source, a.Destination, a.Result)
		}
	}
	g := s.Gate
	clock := "unknown"
	if g.ClockSynced != nil {
		clock = map[bool]string{true: "synced", false: "NOT SYNCED"}[*g.ClockSynced]
	}
	p("\nGATE\t%s\tbuild %s\tup %s\tclock %s\t/perm %s of %s", g.Hostname, orDash(g.Build), time.Duration(g.Uptime)*time.Second, clock, humanBytes(g.PermUsed), humanBytes(g.PermTotal))
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
