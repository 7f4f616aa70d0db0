package nut

import (
	"log/slog"
	"strings"
	"testing"
)

// What each user may do, as the wire shows it.
func TestUserRights(t *testing.T) {
	s := testServer()
	s.Commands = map[string]string{"load.off": "Turn off the load", "beeper.disable": "Disable the beeper", "shutdown.return": "x"}
	s.Writable = map[string]bool{"ups.delay.shutdown": true}
	s.Set = func(string, string) error { return nil }
	s.Log = slog.New(slog.DiscardHandler)
	s.Data = func() Snapshot {
		return Snapshot{Vars: map[string]string{"ups.status": "OL", "ups.delay.shutdown": "20"}}
	}
	s.Users = map[string]User{
		"mon":      {Password: "pw"},
		"boss":     {Password: "pw", Primary: true, Admin: true},
		"beeper":   {Password: "pw", Primary: true, Admin: true, Instcmds: []string{"beeper.disable"}},
		"all":      {Password: "pw", Primary: true, Admin: true, Instcmds: []string{"ALL"}},
		"noset":    {Password: "pw", Primary: true, Admin: true, Actions: []string{"FSD"}},
		"setter":   {Password: "pw", Actions: []string{"set"}, Instcmds: []string{"load.off"}},
		"fsdonly":  {Password: "pw", Actions: []string{"FSD"}},
		"listless": {Password: "pw", Admin: true, Instcmds: []string{}},
	}
	for _, tc := range []struct {
		user, cmd, want string
	}{
		{"mon", "INSTCMD ups load.off", "ERR ACCESS-DENIED"},
		{"mon", "SET VAR ups ups.delay.shutdown 30", "ERR ACCESS-DENIED"},
		{"mon", "FSD ups", "ERR ACCESS-DENIED"},
		{"boss", "INSTCMD ups load.off", "OK"},
		{"boss", "SET VAR ups ups.delay.shutdown 30", "OK"},
		{"beeper", "INSTCMD ups load.off", "ERR ACCESS-DENIED"},
		{"beeper", "INSTCMD ups beeper.disable", "OK"},
		{"beeper", "INSTCMD ups nonesuch", "ERR ACCESS-DENIED"},
		{"all", "INSTCMD ups load.off", "OK"},
		{"all", "INSTCMD ups nonesuch", "ERR CMD-NOT-SUPPORTED"},
		{"noset", "SET VAR ups ups.delay.shutdown 30", "ERR ACCESS-DENIED"},
		{"noset", "FSD ups", "OK FSD-SET"},
		{"setter", "SET VAR ups ups.delay.shutdown 30", "OK"},
		{"setter", "INSTCMD ups load.off", "OK"},
		{"setter", "PRIMARY ups", "ERR ACCESS-DENIED"},
		{"fsdonly", "FSD ups", "OK FSD-SET"},
		{"fsdonly", "PRIMARY ups", "ERR ACCESS-DENIED"},
		{"listless", "INSTCMD ups load.off", "ERR ACCESS-DENIED"},
	} {
		c := &conn{Conn: fakeConn{}, user: tc.user, pass: "pw"}
		w, _ := Split(tc.cmd)
		out, _ := s.command(c, w)
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.user, tc.cmd, got, tc.want)
		}
	}
}

func TestPasswordOK(t *testing.T) {
	users := map[string]User{"a": {Password: "secret"}, "empty": {}}
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"a", "secret", true},
		{"a", "secreT", false},
		{"a", "secret2", false},
		{"a", "", false},
		{"nobody", "", false},
		{"nobody", "secret", false},
	} {
		if got := passwordOK(users, tc.user, tc.pass); got != tc.ok {
			t.Errorf("passwordOK(%s, %q) = %v", tc.user, tc.pass, got)
		}
	}
}
