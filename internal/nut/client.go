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
	vars := map[string]string{}
	err := c.list("VAR", ups, 4, func(w []string) { vars[w[2]] = w[3] })
	return vars, err
}

// RW lists the writable variables of ups and their values.
func (c *Client) RW(ups string) (map[string]string, error) {
	vars := map[string]string{}
	err := c.list("RW", ups, 4, func(w []string) { vars[w[2]] = w[3] })
	return vars, err
}

// Commands lists the instant commands of ups.
func (c *Client) Commands(ups string) ([]string, error) {
	var cmds []string
	err := c.list("CMD", ups, 3, func(w []string) { cmds = append(cmds, w[2]) })
	return cmds, err
}

// CmdDesc reads an instant command's description.
func (c *Client) CmdDesc(ups, cmd string) (string, error) {
	l, err := c.line("GET CMDDESC " + ups + " " + cmd)
	if err != nil {
		return "", err
	}
	w, err := Split(l)
	if err != nil || len(w) != 4 {
		return "", fmt.Errorf("malformed GET CMDDESC answer %q", l)
	}
	return w[3], nil
}

// list sends LIST what ups and hands each line of n words that starts
// with what to item, up to END LIST.
func (c *Client) list(what, ups string, n int, item func(w []string)) error {
	if _, err := c.line("LIST " + what + " " + ups); err != nil {
		return err
	}
	for i := 0; ; i++ {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("LIST %s %s: %w", what, ups, err)
		}
		w, err := Split(strings.TrimRight(l, "\r\n"))
		if err != nil {
			return fmt.Errorf("LIST %s %s: malformed line %q", what, ups, l)
		}
		if len(w) >= 2 && w[0] == "END" {
			return nil
		}
		if len(w) == n && w[0] == what {
			item(w)
		}
		if i > 10000 {
			return fmt.Errorf("LIST %s %s: too many lines", what, ups)
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

// InstCmd runs an instant command on ups (needs an admin login), with
// its parameter when param is not "".
func (c *Client) InstCmd(ups, cmd, param string) error {
	line := "INSTCMD " + ups + " " + cmd
	if param != "" {
		line += " " + Quote(param)
	}
	_, err := c.line(line)
	return err
}

// Type reads a variable's type as the server words it ("RW STRING:16",
// "NUMBER", "RW ENUM STRING:3").
func (c *Client) Type(ups, name string) (string, error) {
	w, err := c.answer("TYPE", ups, name)
	if err != nil {
		return "", err
	}
	return strings.Join(w[3:], " "), nil
}

// Desc reads a variable's description.
func (c *Client) Desc(ups, name string) (string, error) {
	w, err := c.answer("DESC", ups, name)
	if err != nil {
		return "", err
	}
	if len(w) != 4 {
		return "", fmt.Errorf("malformed GET DESC answer %q", strings.Join(w, " "))
	}
	return w[3], nil
}

// answer sends GET what ups name and checks that the answer echoes it.
func (c *Client) answer(what, ups, name string) ([]string, error) {
	l, err := c.line("GET " + what + " " + ups + " " + name)
	if err != nil {
		return nil, err
	}
	w, err := Split(l)
	if err != nil || len(w) < 4 || w[0] != what || w[1] != ups || w[2] != name {
		return nil, fmt.Errorf("malformed GET %s answer %q", what, l)
	}
	return w, nil
}

// Enum lists a variable's allowed values (LIST ENUM).
func (c *Client) Enum(ups, name string) ([]string, error) {
	var vals []string
	err := c.list("ENUM", ups+" "+name, 4, func(w []string) { vals = append(vals, w[3]) })
	return vals, err
}

// Range lists a variable's allowed ranges (LIST RANGE) as {min, max}.
func (c *Client) Range(ups, name string) ([][2]string, error) {
	var rs [][2]string
	err := c.list("RANGE", ups+" "+name, 5, func(w []string) { rs = append(rs, [2]string{w[3], w[4]}) })
	return rs, err
}

// SetVar sets a variable (needs an admin login).
func (c *Client) SetVar(ups, name, value string) error {
	_, err := c.line("SET VAR " + ups + " " + name + " " + Quote(value))
	return err
}
