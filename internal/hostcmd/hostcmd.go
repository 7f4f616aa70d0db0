// Package hostcmd is what the gate runs on the site's hosts over SSH with
// its shutdown key: the pre-steps of the ordered shutdown (k3s-drain,
// ceph-noout), their undo when power returns, and a host's shutdown
// command; and the forced command that lets that key run exactly those
// commands and nothing else.
//
// The key is installed by bootstrapd's cloud-init as
//
//	restrict,command="/usr/local/sbin/gate-command" ssh-ed25519 AAAA… gate-shutdown
//
// and /usr/local/sbin/gate-command (Script) runs $SSH_ORIGINAL_COMMAND
// only when it is one of the host's commands (Allowed), byte for byte.
package hostcmd

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ScriptPath is where the forced command is installed on the hosts.
const ScriptPath = "/usr/local/sbin/gate-command"

// Pre-steps of a shutdown group.
const (
	K3sDrain  = "k3s-drain"
	CephNoout = "ceph-noout"
)

// Step is the command of pre-step step, run on host (the group's first).
func Step(step, host string) (string, error) {
	switch step {
	case K3sDrain:
		return "kubectl drain " + host + " --ignore-daemonsets --delete-emptydir-data --force --timeout=60s", nil
	case CephNoout:
		return "ceph osd set noout", nil
	}
	return "", fmt.Errorf("unknown pre-step %q", step)
}

// Undo is the command that undoes pre-step step on host.
func Undo(step, host string) (string, error) {
	switch step {
	case K3sDrain:
		return "kubectl uncordon " + host, nil
	case CephNoout:
		return "ceph osd unset noout", nil
	}
	return "", fmt.Errorf("unknown pre-step %q", step)
}

// Allowed lists the commands the gate may run on host: each pre-step of
// its group and its undo, and shutdownCmd ("" when the host is not shut
// down over SSH). Unknown steps are skipped (the site file's validation
// refuses them).
func Allowed(host string, steps []string, shutdownCmd string) []string {
	var cmds []string
	for _, s := range steps {
		do, err := Step(s, host)
		if err != nil {
			continue
		}
		undo, _ := Undo(s, host)
		cmds = append(cmds, do, undo)
	}
	if shutdownCmd != "" {
		cmds = append(cmds, shutdownCmd)
	}
	return cmds
}

// Script is the forced command's /bin/sh script: it runs
// $SSH_ORIGINAL_COMMAND only when it equals one of cmds, and refuses
// anything else (exit 126, a line on stderr).
func Script(cmds []string) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# gate-command: the gate's shutdown key runs only these commands, exactly
# as written (installed by the gate's cloud-init; see the gate's README,
# "UPS: what the hosts need").
case "$SSH_ORIGINAL_COMMAND" in
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, "%s)\n\texec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\" ;;\n", shQuote(c))
	}
	b.WriteString(`esac
echo "gate-command: refused: $SSH_ORIGINAL_COMMAND" >&2
exit 126
`)
	return b.String()
}

// shQuote quotes s for sh so that, as a case pattern, it matches itself
// only (quoted glob characters are literal).
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// AuthorizedKey is the authorized_keys line of the gate's key pub,
// restricted to the forced command.
func AuthorizedKey(pub ssh.PublicKey) string {
	return `restrict,command="` + ScriptPath + `" ` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " gate-shutdown"
}

// PublicKey parses an OpenSSH private key (the shutdown key's secret) and
// returns its public half.
func PublicKey(private []byte) (ssh.PublicKey, error) {
	s, err := ssh.ParsePrivateKey(private)
	if err != nil {
		return nil, fmt.Errorf("hostcmd: shutdown key: %w", err)
	}
	return s.PublicKey(), nil
}
