package main

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// stdlogTo routes net/http's internal log lines (TLS errors, panics it recovered) into zerolog.
func stdlogTo(l zerolog.Logger) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		l.Warn().Str("source", "net/http").Msg(strings.TrimSpace(string(p)))
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
