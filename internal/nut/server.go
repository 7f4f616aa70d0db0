package nut

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gate/internal/tcpserve"
)

// User is an account of the server.
type User struct {
	Password string
	// Primary may take the primary role (PRIMARY/MASTER) and set FSD.
	Primary bool
	// Admin may SET variables and run INSTCMDs.
	Admin bool
	// Actions, when not nil, grants "SET" and "FSD" (upsd.users' actions)
	// in place of Admin's SET; Instcmds, when not nil, lists the INSTCMDs
	// allowed ("ALL": every one) in place of Admin's. See may, mayRun.
	Actions, Instcmds []string
}

// Snapshot is the UPS's data at one moment.
type Snapshot struct {
	Vars  map[string]string
	Stale bool // no fresh data from the driver: ERR DATA-STALE
	// Writable and Commands, when set, replace the Server's own: what
	// the UPS behind the snapshot lets one change and run.
	Writable map[string]bool
	Commands map[string]string
	// Types, Descs, Enums and Ranges, when set, are the source's own
	// answers to GET TYPE ("RW STRING:16", "NUMBER"), GET DESC, LIST ENUM
	// and LIST RANGE ({min, max} pairs), served as they are.
	Types  map[string]string
	Descs  map[string]string
	Enums  map[string][]string
	Ranges map[string][][2]string
}

// Server serves one UPS.
type Server struct {
	UPS   string
	Desc  string
	Users map[string]User
	// Data returns the current snapshot.
	Data func() Snapshot
	// Status rewrites ups.status as served to a client logged in as user
	// ("" when not logged in); nil serves it as is (plus FSD once set).
	Status func(user, status string) string
	// Commands lists the INSTCMDs (name → description) Exec runs.
	Commands map[string]string
	Exec     func(cmd, param string) error
	// Writable lists the variables SET may change; Set changes one.
	Writable map[string]bool
	Set      func(name, value string) error

	// OnFSD, when set, is called for an FSD from a NUT client (a primary
	// or admin user) instead of raising the server's own latch; an error
	// refuses it (ERR with the error's word when it is an *Error, else
	// ACCESS-DENIED).
	OnFSD func(user string) error

	IdleTimeout time.Duration // default 60s
	// MaxConn and MaxPerSource cap the connections served at once, in
	// all and from one source (0: 1024, upsd's MAXCONN, and 16).
	MaxConn, MaxPerSource int
	Log                   *slog.Logger

	accept  tcpserve.Server // shared by every listener
	mu      sync.Mutex
	clients map[*conn]bool
	fsd     bool
}

type conn struct {
	net.Conn
	user, pass string
	loggedIn   bool
}

// SetFSD raises the forced-shutdown flag (a latch, as in upsd).
func (s *Server) SetFSD() {
	s.mu.Lock()
	s.fsd = true
	s.mu.Unlock()
}

// ClearFSD lowers it (power is back and no shutdown is running).
func (s *Server) ClearFSD() {
	s.mu.Lock()
	s.fsd = false
	s.mu.Unlock()
}

// FSD reports the flag.
func (s *Server) FSD() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fsd
}

// Logins returns how many connections are logged in, by user name.
func (s *Server) Logins() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{}
	for c := range s.clients {
		if c.loggedIn {
			m[c.user]++
		}
	}
	return m
}

// Serve accepts clients on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.IdleTimeout == 0 {
		s.IdleTimeout = 60 * time.Second
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.mu.Lock()
	if s.clients == nil {
		s.clients = map[*conn]bool{}
		s.accept.Max, s.accept.PerSource, s.accept.Log = cmp.Or(s.MaxConn, 1024), cmp.Or(s.MaxPerSource, 16), s.Log
	}
	s.mu.Unlock()
	return s.accept.Serve(ctx, ln, func(ctx context.Context, nc net.Conn) {
		c := &conn{Conn: nc}
		s.mu.Lock()
		s.clients[c] = true
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.clients, c)
			s.mu.Unlock()
			if c.loggedIn {
				s.Log.Info("NUT client gone", "user", c.user, "client", nc.RemoteAddr().String())
			}
		}()
		s.handle(c)
	})
}

func (s *Server) handle(c *conn) {
	r := bufio.NewReaderSize(c, MaxLine+2)
	w := bufio.NewWriter(c)
	for {
		c.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			w.WriteString("ERR TOO-LONG\n")
			w.Flush()
			return
		}
		if err != nil {
			return
		}
		words, err := Split(strings.TrimRight(string(line), "\r\n"))
		if err != nil {
			fmt.Fprintf(w, "ERR %s\n", err.Error())
			w.Flush()
			continue
		}
		if len(words) == 0 {
			continue
		}
		out, closeAfter := s.command(c, words)
		w.WriteString(out)
		if err := w.Flush(); err != nil || closeAfter {
			return
		}
	}
}

func errLine(word string) string { return "ERR " + word + "\n" }

// command answers one command; closeAfter ends the connection.
func (s *Server) command(c *conn, w []string) (out string, closeAfter bool) {
	cmd := strings.ToUpper(w[0])
	args := w[1:]
	switch cmd {
	case "VER":
		return "Network UPS Tools upsd (gate) - NUT protocol 1.3\n", false
	case "NETVER", "PROTVER":
		return "1.3\n", false
	case "HELP":
		return "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n", false
	case "STARTTLS":
		return errLine("FEATURE-NOT-CONFIGURED"), false
	case "USERNAME":
		if len(args) != 1 {
			return errLine("INVALID-ARGUMENT"), false
		}
		if c.user != "" {
			return errLine("ALREADY-SET-USERNAME"), false
		}
		c.user = args[0]
		return "OK\n", false
	case "PASSWORD":
		if len(args) != 1 {
			return errLine("INVALID-ARGUMENT"), false
		}
		if c.pass != "" {
			return errLine("ALREADY-SET-PASSWORD"), false
		}
		c.pass = args[0]
		return "OK\n", false
	case "LOGOUT":
		return "OK Goodbye\n", true
	case "LOGIN":
		if len(args) != 1 {
			return errLine("INVALID-ARGUMENT"), false
		}
		if e := s.auth(c); e != "" {
			return e, false
		}
		if !strings.EqualFold(args[0], s.UPS) {
			return errLine("UNKNOWN-UPS"), false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.loggedIn {
			return errLine("ALREADY-LOGGED-IN"), false
		}
		c.loggedIn = true
		s.Log.Info("NUT client logged in", "user", c.user, "client", c.RemoteAddr().String())
		return "OK\n", false
	case "PRIMARY", "MASTER":
		if e := s.primaryCheck(c, args, "PRIMARY"); e != "" {
			return e, false
		}
		return "OK " + cmd + "-GRANTED\n", false
	case "FSD":
		if e := s.primaryCheck(c, args, "FSD"); e != "" {
			return e, false
		}
		if s.OnFSD != nil {
			if err := s.OnFSD(c.user); err != nil {
				s.Log.Warn("FSD from a NUT client refused", "user", c.user, "client", c.RemoteAddr().String(), "err", err)
				return errLine(errWord(err, "ACCESS-DENIED")), false
			}
			return "OK FSD-SET\n", false
		}
		s.SetFSD()
		s.Log.Warn("FSD set by a NUT client", "user", c.user, "client", c.RemoteAddr().String())
		return "OK FSD-SET\n", false
	case "GET":
		return s.get(c, args), false
	case "LIST":
		return s.list(c, args), false
	case "SET":
		return s.set(c, args), false
	case "INSTCMD":
		return s.instcmd(c, args), false
	}
	return errLine("UNKNOWN-COMMAND"), false
}

// primaryCheck checks a command that needs the primary right on this UPS
// (PRIMARY, MASTER, FSD): one argument, valid credentials, the right.
func (s *Server) primaryCheck(c *conn, args []string, action string) string {
	if len(args) != 1 {
		return errLine("INVALID-ARGUMENT")
	}
	if e := s.auth(c); e != "" {
		return e
	}
	if !s.Users[c.user].may(action) {
		return errLine("ACCESS-DENIED")
	}
	return s.checkUPS(args[0])
}

// auth checks the connection's credentials.
func (s *Server) auth(c *conn) string {
	if c.user == "" {
		return errLine("USERNAME-REQUIRED")
	}
	if c.pass == "" {
		return errLine("PASSWORD-REQUIRED")
	}
	if !passwordOK(s.Users, c.user, c.pass) {
		return errLine("ACCESS-DENIED")
	}
	return ""
}

// vars returns the variables as served to c, or "" and an error word.
func (s *Server) vars(c *conn) (map[string]string, string) {
	snap := s.Data()
	if snap.Stale {
		return nil, "DATA-STALE"
	}
	if len(snap.Vars) == 0 {
		return nil, "DRIVER-NOT-CONNECTED"
	}
	vars := make(map[string]string, len(snap.Vars)+1)
	for k, v := range snap.Vars {
		vars[k] = v
	}
	st := vars["ups.status"]
	user := ""
	if c.loggedIn {
		user = c.user
	}
	if s.Status != nil {
		st = s.Status(user, st)
	} else if s.FSD() && !strings.Contains(st, "FSD") {
		st = strings.TrimSpace("FSD " + st)
	}
	vars["ups.status"] = st
	return vars, ""
}

func (s *Server) checkUPS(name string) string {
	if !strings.EqualFold(name, s.UPS) {
		return errLine("UNKNOWN-UPS")
	}
	return ""
}

func (s *Server) get(c *conn, a []string) string {
	if len(a) < 2 {
		return errLine("INVALID-ARGUMENT")
	}
	what, ups := strings.ToUpper(a[0]), a[1]
	if e := s.checkUPS(ups); e != "" {
		return e
	}
	switch what {
	case "NUMLOGINS":
		n := 0
		for _, v := range s.Logins() {
			n += v
		}
		return fmt.Sprintf("NUMLOGINS %s %d\n", ups, n)
	case "UPSDESC":
		return fmt.Sprintf("UPSDESC %s %s\n", ups, Quote(s.Desc))
	case "CMDDESC":
		if len(a) != 3 {
			return errLine("INVALID-ARGUMENT")
		}
		_, cmds := s.caps()
		d, ok := cmds[a[2]]
		if !ok {
			d = unavailable // as upsd answers for any name
		}
		return fmt.Sprintf("CMDDESC %s %s %s\n", ups, a[2], Quote(d))
	case "VAR", "TYPE", "DESC":
		if len(a) != 3 {
			return errLine("INVALID-ARGUMENT")
		}
		if what == "DESC" { // upsd describes any name, served or not
			return fmt.Sprintf("DESC %s %s %s\n", ups, a[2], Quote(s.describe(a[2])))
		}
		vars, e := s.vars(c)
		if e != "" {
			return errLine(e)
		}
		v, ok := vars[a[2]]
		if !ok {
			return errLine("VAR-NOT-SUPPORTED")
		}
		switch what {
		case "VAR":
			return fmt.Sprintf("VAR %s %s %s\n", ups, a[2], Quote(v))
		default:
			return fmt.Sprintf("TYPE %s %s %s\n", ups, a[2], s.varType(a[2], v))
		}
	}
	return errLine("INVALID-ARGUMENT")
}

func (s *Server) list(c *conn, a []string) string {
	if len(a) < 1 {
		return errLine("INVALID-ARGUMENT")
	}
	what := strings.ToUpper(a[0])
	var b strings.Builder
	if what == "UPS" {
		fmt.Fprintf(&b, "BEGIN LIST UPS\nUPS %s %s\nEND LIST UPS\n", s.UPS, Quote(s.Desc))
		return b.String()
	}
	if len(a) < 2 {
		return errLine("INVALID-ARGUMENT")
	}
	ups := a[1]
	if e := s.checkUPS(ups); e != "" {
		return e
	}
	query := what + " " + ups
	switch what {
	case "VAR", "RW":
		vars, e := s.vars(c)
		if e != "" {
			return errLine(e)
		}
		rw, _ := s.caps()
		var names []string
		for k := range vars {
			if what == "VAR" || rw[k] {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "BEGIN LIST %s\n", query)
		for _, k := range names {
			fmt.Fprintf(&b, "%s %s %s %s\n", what, ups, k, Quote(vars[k]))
		}
	case "CMD":
		var names []string
		_, cmds := s.caps()
		for k := range cmds {
			names = append(names, k)
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "BEGIN LIST %s\n", query)
		for _, k := range names {
			fmt.Fprintf(&b, "CMD %s %s\n", ups, k)
		}
	case "ENUM", "RANGE":
		if len(a) != 3 {
			return errLine("INVALID-ARGUMENT")
		}
		vars, e := s.vars(c)
		if e != "" {
			return errLine(e)
		}
		if _, ok := vars[a[2]]; !ok {
			return errLine("VAR-NOT-SUPPORTED")
		}
		query += " " + a[2]
		fmt.Fprintf(&b, "BEGIN LIST %s\n", query)
		snap := s.Data()
		if what == "ENUM" {
			for _, v := range snap.Enums[a[2]] {
				fmt.Fprintf(&b, "ENUM %s %s %s\n", ups, a[2], Quote(v))
			}
		} else {
			for _, r := range snap.Ranges[a[2]] {
				fmt.Fprintf(&b, "RANGE %s %s %s %s\n", ups, a[2], Quote(r[0]), Quote(r[1]))
			}
		}
	case "CLIENT":
		s.mu.Lock()
		var addrs []string
		for cl := range s.clients {
			if cl.loggedIn {
				h, _, _ := net.SplitHostPort(cl.RemoteAddr().String())
				addrs = append(addrs, h)
			}
		}
		s.mu.Unlock()
		sort.Strings(addrs)
		fmt.Fprintf(&b, "BEGIN LIST %s\n", query)
		for _, h := range addrs {
			fmt.Fprintf(&b, "CLIENT %s %s\n", ups, h)
		}
	default:
		return errLine("INVALID-ARGUMENT")
	}
	fmt.Fprintf(&b, "END LIST %s\n", query)
	return b.String()
}

func (s *Server) set(c *conn, a []string) string {
	if len(a) != 4 || !strings.EqualFold(a[0], "VAR") {
		return errLine("INVALID-ARGUMENT")
	}
	if e := s.auth(c); e != "" {
		return e
	}
	if !s.Users[c.user].may("SET") {
		return errLine("ACCESS-DENIED")
	}
	if e := s.checkUPS(a[1]); e != "" {
		return e
	}
	if rw, _ := s.caps(); !rw[a[2]] || s.Set == nil {
		vars, _ := s.vars(c)
		if _, ok := vars[a[2]]; !ok {
			return errLine("VAR-NOT-SUPPORTED")
		}
		return errLine("READONLY")
	}
	if err := s.Set(a[2], a[3]); err != nil {
		s.Log.Warn("SET failed", "var", a[2], "err", err)
		return errLine(errWord(err, "SET-FAILED"))
	}
	s.Log.Info("variable set", "user", c.user, "var", a[2], "value", a[3])
	return "OK\n"
}

func (s *Server) instcmd(c *conn, a []string) string {
	if len(a) < 2 || len(a) > 3 {
		return errLine("INVALID-ARGUMENT")
	}
	if e := s.auth(c); e != "" {
		return e
	}
	if e := s.checkUPS(a[0]); e != "" {
		return e
	}
	if !s.Users[c.user].mayRun(a[1]) { // before the command's support, as upsd
		return errLine("ACCESS-DENIED")
	}
	_, cmds := s.caps()
	if _, ok := cmds[a[1]]; !ok || s.Exec == nil {
		return errLine("CMD-NOT-SUPPORTED")
	}
	param := ""
	if len(a) == 3 {
		param = a[2]
	}
	if err := s.Exec(a[1], param); err != nil {
		s.Log.Warn("INSTCMD failed", "cmd", a[1], "err", err)
		return errLine(errWord(err, "INSTCMD-FAILED"))
	}
	s.Log.Info("instant command run", "user", c.user, "cmd", a[1])
	return "OK\n"
}

// caps returns what may be set and run: the snapshot's, else the
// Server's own.
func (s *Server) caps() (map[string]bool, map[string]string) {
	rw, cmds := s.Writable, s.Commands
	if s.Data != nil {
		snap := s.Data()
		if snap.Writable != nil {
			rw = snap.Writable
		}
		if snap.Commands != nil {
			cmds = snap.Commands
		}
	}
	return rw, cmds
}

// errWord is the ERR word for a failed action: the source's own word when
// err carries one (*Error: the UPS behind refused it), else fallback.
func errWord(err error, fallback string) string {
	var ne *Error
	if errors.As(err, &ne) && ne.Word != "" && !strings.ContainsAny(ne.Word, " \t\r\n") {
		return ne.Word
	}
	return fallback
}

// varType is GET TYPE's answer: the source's own when it gave one, else
// guessed from the value as upsd types a variable its driver did not
// flag (a number, else a string of up to 32 characters).
func (s *Server) varType(name, value string) string {
	if t := s.Data().Types[name]; t != "" {
		return t
	}
	t := "NUMBER"
	if _, err := strconv.ParseFloat(value, 64); err != nil {
		t = fmt.Sprintf("STRING:%d", max(len(value), 32))
	}
	if rw, _ := s.caps(); rw[name] {
		t = "RW " + t
	}
	return t
}

// describe is GET DESC's answer: the source's own, else NUT's.
func (s *Server) describe(name string) string {
	if d := s.Data().Descs[name]; d != "" {
		return d
	}
	return describe(name)
}

// unavailable is upsd's description of a name it has none for.
const unavailable = "Description unavailable"

// describe gives the descriptions NUT's upsd gives the common variables
// (docs/nut-names.txt, data/cmdvartab).
func describe(v string) string {
	switch v {
	case "ups.status":
		return "UPS status"
	case "ups.alarm":
		return "UPS alarms"
	case "ups.mfr":
		return "UPS manufacturer"
	case "ups.model":
		return "UPS model"
	case "ups.serial":
		return "UPS serial number"
	case "ups.load":
		return "Load on UPS (percent of full)"
	case "ups.delay.shutdown":
		return "Interval to wait after shutdown with delay command (seconds)"
	case "ups.delay.start":
		return "Interval to wait before (re)starting the load (seconds)"
	case "ups.timer.shutdown":
		return "Time before the load will be shutdown (seconds)"
	case "ups.timer.start":
		return "Time before the load will be started (seconds)"
	case "battery.charge":
		return "Battery charge (percent of full)"
	case "battery.charge.low":
		return "Remaining battery level when UPS switches to LB (percent)"
	case "battery.runtime":
		return "Battery runtime (seconds)"
	case "battery.runtime.low":
		return "Remaining battery runtime when UPS switches to LB (seconds)"
	case "battery.voltage":
		return "Battery voltage (V)"
	case "input.voltage":
		return "Input voltage (V)"
	case "output.voltage":
		return "Output voltage (V)"
	case "ups.vendorid":
		return "Vendor ID for USB devices"
	case "ups.productid":
		return "Product ID for USB devices"
	case "driver.name":
		return "Driver name"
	}
	return unavailable
}
