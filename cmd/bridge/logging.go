package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Log formats of --log-format.
const (
	logAuto    = "auto"    // console when stderr is a terminal, else JSON
	logJSON    = "json"    // one JSON object per line
	logConsole = "console" // zerolog's readable ConsoleWriter
)

// isTerminal reports whether w is a character device (a terminal), without a
// dependency: a pipe, a file or a buffer is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseLogLevel accepts zerolog's level names (trace, debug, info, warn, error,
// fatal, panic, disabled).
func parseLogLevel(s string) (zerolog.Level, error) {
	lv, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(s)))
	if err != nil || s == "" {
		return zerolog.NoLevel, fmt.Errorf("%q: want trace, debug, info, warn, error or disabled", s)
	}
	return lv, nil
}

// checkLogFormat accepts auto, json or console.
func checkLogFormat(s string) error {
	switch s {
	case logAuto, logJSON, logConsole:
		return nil
	}
	return fmt.Errorf("%q: want auto, json or console", s)
}

// newLogger makes the process logger: JSON lines by default, zerolog's
// ConsoleWriter when the format says so (or is auto and stderr is a terminal).
// The logger carries a timestamp; the packages add account and subject fields.
// Nothing that reaches it may hold a secret: the packages log session numbers and
// QQ numbers, never cookies, tokens or the session blob.
func newLogger(w io.Writer, level zerolog.Level, format string, terminal bool) zerolog.Logger {
	if format == logConsole || (format == logAuto && terminal) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !terminal}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
