package nut

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// Client is a connection to a upsd.
type Client struct {
	c net.Conn
	r *bufio.Reader
}

// Dial connects to addr (host:port).
func Dial(ctx context.Context, addr string) (*Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("NUT server %s: %w", addr, err)
	}
	return &Client{c: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

// Close ends the connection (LOGOUT first when logged in).
func (c *Client) Close() error {
	c.c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.c, "LOGOUT\n")
	return c.c.Close()
}

// line sends one command and reads one answer line.
func (c *Client) line(cmd string) (string, error) {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.c, "%s\n", cmd); err != nil {
		return "", err
	}
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	l = strings.TrimRight(l, "\r\n")
	if strings.HasPrefix(l, "ERR ") {
		return "", &Error{Word: strings.TrimPrefix(l, "ERR "), Cmd: strings.Fields(cmd)[0]}
	}
	return l, nil
}

// Error is an ERR answer.
type Error struct{ Word, Cmd string }

func (e *Error) Error() string { return fmt.Sprintf("NUT %s: ERR %s", e.Cmd, e.Word) }

// Login authenticates (USERNAME, PASSWORD) and, when ups is given, LOGINs.
func (c *Client) Login(user, password, ups string) error {
	if user != "" {
		if _, err := c.line("USERNAME " + Quote(user)); err != nil {
			return err
		}
		if _, err := c.line("PASSWORD " + Quote(password)); err != nil {
			return err
		}
	}
	if ups != "" {
		if _, err := c.line("LOGIN " + ups); err != nil {
			return err
		}
	}
	return nil
}

// Vars lists every variable of ups.
func (c *Client) Vars(ups string) (map[string]string, error) {
	if _, err := c.line("LIST VAR " + ups); err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		w, err := Split(strings.TrimRight(l, "\r\n"))
		if err != nil {
			return nil, fmt.Errorf("malformed LIST VAR line %q", l)
		}
		if len(w) >= 2 && w[0] == "END" {
			return vars, nil
		}
		if len(w) == 4 && w[0] == "VAR" {
			vars[w[2]] = w[3]
		}
		if len(vars) > 10000 {
			return nil, fmt.Errorf("LIST VAR %s: too many variables", ups)
		}
	}
}

// Get reads one variable.
func (c *Client) Get(ups, name string) (string, error) {
	l, err := c.line("GET VAR " + ups + " " + name)
	if err != nil {
		return "", err
	}
	w, err := Split(l)
	if err != nil || len(w) != 4 {
		return "", fmt.Errorf("malformed GET answer %q", l)
	}
	return w[3], nil
}

// InstCmd runs an instant command on ups (needs an admin login).
func (c *Client) InstCmd(ups, cmd string) error {
	_, err := c.line("INSTCMD " + ups + " " + cmd)
	return err
}

// SetVar sets a variable (needs an admin login).
func (c *Client) SetVar(ups, name, value string) error {
	_, err := c.line("SET VAR " + ups + " " + name + " " + Quote(value))
	return err
}
