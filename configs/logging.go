package configs

import (
	"io"

	"github.com/sirupsen/logrus"
)

// NewLogger returns a JSON logger at the configured level, tagged with the
// program name. It is created once in main and passed down; nothing in the
// project logs through logrus's global logger.
func NewLogger(cfg Config, program string, out io.Writer) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(out)
	l.SetFormatter(&logrus.JSONFormatter{})
	if lvl, err := logrus.ParseLevel(cfg.LogLevel); err == nil {
		l.SetLevel(lvl)
	}
	return l.WithField("program", program)
}
