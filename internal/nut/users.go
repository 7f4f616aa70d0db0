package nut

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
)

// may reports whether u may do action: "PRIMARY" (take the primary role),
// "FSD" or "SET", as upsd.users' upsmon and actions lines grant them.
// Actions, when set, is authoritative for SET and adds FSD; without it
// an Admin may SET and a Primary may set FSD.
func (u User) may(action string) bool {
	has := slices.ContainsFunc(u.Actions, func(a string) bool { return strings.EqualFold(a, action) })
	switch action {
	case "PRIMARY":
		return u.Primary
	case "FSD":
		return u.Primary || has
	case "SET":
		if u.Actions != nil {
			return has
		}
		return u.Admin
	}
	return false
}

// mayRun reports whether u may run the instant command cmd: when
// Instcmds is set, only those (or any, with "ALL"); else an Admin any.
func (u User) mayRun(cmd string) bool {
	if u.Instcmds != nil {
		return slices.ContainsFunc(u.Instcmds, func(c string) bool { return c == cmd || strings.EqualFold(c, "ALL") })
	}
	return u.Admin
}

// passwordOK compares in constant time (and in the same time whether
// the user exists or not): the answer's timing says nothing about how
// much of a guess was right.
func passwordOK(users map[string]User, name, pass string) bool {
	u, ok := users[name]
	want := sha256.Sum256([]byte(u.Password))
	got := sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1 && ok
}
