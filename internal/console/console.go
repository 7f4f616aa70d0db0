// Package console is where the gate's programs log: their own output,
// which gokrazy keeps only in a ring buffer per program, and, when asked
// (the -console flag the image gives them), /dev/console too, which the
// screen and the serial line show. It imports nothing of the daemons, so
// that small programs beside gokrazy's (lanroute) stay small.
package console

import (
	"io"
	"os"
)

// Path is the console device.
const Path = "/dev/console"

// Output returns w when on is false or the console cannot be opened
// for writing, else a writer to both.
func Output(w io.Writer, on bool) io.Writer {
	return output(w, on, Path)
}

func output(w io.Writer, on bool, path string) io.Writer {
	if !on {
		return w
	}
	c, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return w
	}
	return io.MultiWriter(w, c)
}
