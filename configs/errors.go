package configs

import (
	"errors"
	"fmt"
)

// SettingError is a problem with one setting. Setting is the name users
// write (the environment variable, e.g. BACKUP_TARGETS), never a Go field
// name; code that needs to know which setting is wrong reads it with
// errors.As, never by matching the message.
type SettingError struct {
	Setting string
	Err     error
}

// Error reads "config: SETTING: what is wrong", the form every
// configuration error has had since the first release.
func (e *SettingError) Error() string { return "config: " + e.Setting + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *SettingError) Unwrap() error { return e.Err }

// Bad is the SettingError for setting, with a message formatted as by
// fmt.Errorf (so %w wraps).
func Bad(setting, format string, args ...any) error {
	return &SettingError{Setting: setting, Err: fmt.Errorf(format, args...)}
}

// Settings lists the settings err names through *SettingError, looking
// into joined and wrapped errors, in order.
func Settings(err error) []string {
	var se *SettingError
	switch e := err.(type) {
	case nil:
		return nil
	case interface{ Unwrap() []error }:
		var out []string
		for _, inner := range e.Unwrap() {
			out = append(out, Settings(inner)...)
		}
		return out
	}
	if errors.As(err, &se) {
		return []string{se.Setting}
	}
	return nil
}
