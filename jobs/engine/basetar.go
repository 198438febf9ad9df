package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// baseScan is what reading a base backup's tar found.
type baseScan struct {
	// unpacked is the sum of the sizes of its regular files.
	unpacked int64
	// startLSN and timeline are backup_label's START WAL LOCATION and
	// START TIMELINE.
	startLSN lsn
	timeline uint32
	// label, version and manifest: backup_label, PG_VERSION and
	// backup_manifest were members.
	label, version, manifest bool
}

// complete refuses a tar that is not a whole base backup.
func (s baseScan) complete() error {
	var missing []string
	for name, ok := range map[string]bool{"backup_label": s.label, "PG_VERSION": s.version, "backup_manifest": s.manifest} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the base backup's tar has no %s", ErrInvalidArchive, strings.Join(missing, ", "))
	}
	return nil
}

// scanBaseTar reads a base backup's tar (pg_basebackup -Ft, one
// tablespace) from r to its end: it sums the files' sizes, parses
// backup_label and copies backup_manifest, if it is at most maxManifest
// bytes, into manifest. Only one block of the tar is held at a time.
func scanBaseTar(r io.Reader, manifest io.Writer, maxManifest int64) (baseScan, error) {
	var s baseScan
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, fmt.Errorf("%w: base backup tar: %w", ErrInvalidArchive, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		s.unpacked += hdr.Size
		switch path.Clean(hdr.Name) {
		case "PG_VERSION":
			s.version = true
		case "backup_label":
			b, err := io.ReadAll(io.LimitReader(tr, 64<<10))
			if err != nil {
				return s, fmt.Errorf("read backup_label: %w", err)
			}
			if s.startLSN, s.timeline, err = parseBackupLabel(b); err != nil {
				return s, err
			}
			s.label = true
		case "backup_manifest":
			if hdr.Size > maxManifest {
				return s, fmt.Errorf("%w: backup_manifest is %d bytes, more than the %d this service keeps", ErrInvalid, hdr.Size, maxManifest)
			}
			if _, err := io.Copy(manifest, tr); err != nil {
				return s, fmt.Errorf("copy backup_manifest: %w", err)
			}
			s.manifest = true
		}
	}
	// What follows the end-of-archive blocks (padding) is read too, so
	// that a tee feeding this reader is never left blocked.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return s, err
	}
	return s, nil
}

// parseBackupLabel reads START WAL LOCATION and START TIMELINE from
// backup_label.
func parseBackupLabel(b []byte) (start lsn, timeline uint32, err error) {
	var haveStart, haveTLI bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch key {
		case "START WAL LOCATION":
			// "0/2000028 (file 000000010000000000000002)"
			if start, err = parseLSN(strings.Fields(val + " ")[0]); err != nil {
				return 0, 0, fmt.Errorf("%w: backup_label: %w", ErrInvalidArchive, err)
			}
			haveStart = true
		case "START TIMELINE":
			n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
			if err != nil {
				return 0, 0, fmt.Errorf("%w: backup_label: timeline %q", ErrInvalidArchive, val)
			}
			timeline, haveTLI = uint32(n), true
		}
	}
	if !haveStart || !haveTLI {
		return 0, 0, fmt.Errorf("%w: backup_label has no START WAL LOCATION or START TIMELINE", ErrInvalidArchive)
	}
	return start, timeline, nil
}

// walRange is one of backup_manifest's WAL-Ranges.
type walRange struct {
	Timeline uint32 `json:"Timeline"`
	Start    string `json:"Start-LSN"`
	End      string `json:"End-LSN"`
	start    lsn
	end      lsn
}

// parseWALRanges reads backup_manifest's WAL-Ranges, token by token, so
// that its list of files (most of it) is never held in memory.
func parseWALRanges(r io.Reader) ([]walRange, error) {
	dec := json.NewDecoder(r)
	bad := func(err error) ([]walRange, error) {
		return nil, fmt.Errorf("%w: backup_manifest: %w", ErrInvalidArchive, err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad(fmt.Errorf("not a JSON object (%v)", err))
	}
	var ranges []walRange
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		if key != "WAL-Ranges" {
			if err := skipJSON(dec); err != nil {
				return bad(err)
			}
			continue
		}
		if err := dec.Decode(&ranges); err != nil {
			return bad(err)
		}
	}
	if len(ranges) == 0 {
		return bad(errors.New("no WAL-Ranges"))
	}
	for i := range ranges {
		w := &ranges[i]
		var err1, err2 error
		w.start, err1 = parseLSN(w.Start)
		w.end, err2 = parseLSN(w.End)
		if err := errors.Join(err1, err2); err != nil {
			return bad(err)
		}
		if w.end < w.start || (i > 0 && w.start < ranges[i-1].end) {
			return bad(fmt.Errorf("WAL range %s-%s out of order", w.Start, w.End))
		}
	}
	return ranges, nil
}

// skipJSON reads one value of any size past dec, a token at a time.
func skipJSON(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// lsn is a WAL position (the engine's own: jobs/wal imports the engine).
type lsn uint64

// parseLSN reads PostgreSQL's "X/X" notation.
func parseLSN(s string) (lsn, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	return lsn(h<<32 | l), nil
}

// String writes the LSN as PostgreSQL does.
func (l lsn) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// tarTee hands a base backup's tar on unchanged while scanBaseTar reads
// a copy of it in a goroutine; its result is known once the stream has
// been read to its end (see wait).
type tarTee struct {
	src  io.Reader
	pw   *io.PipeWriter
	done chan struct{}
	scan baseScan
	err  error
}

// newTarTee starts the scanner, which spools backup_manifest into
// manifest.
func newTarTee(src io.Reader, manifest io.Writer, maxManifest int64) *tarTee {
	pr, pw := io.Pipe()
	t := &tarTee{src: src, pw: pw, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.scan, t.err = scanBaseTar(pr, manifest, maxManifest)
		// A failed scan fails the stream at its next write; a finished
		// one lets the writer go on.
		pr.CloseWithError(errOrStopped(t.err))
	}()
	return t
}

func (t *tarTee) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 {
		if _, werr := t.pw.Write(p[:n]); werr != nil {
			return n, fmt.Errorf("base backup tar: %w", werr)
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		t.pw.Close()
	case err != nil:
		t.pw.CloseWithError(err)
	}
	return n, err
}

// wait stops the scanner if the stream ended early and returns what it
// found; err is nil only if it read the whole tar.
func (t *tarTee) wait() (baseScan, error) {
	t.pw.CloseWithError(errStopped) // no-op after a clean end
	<-t.done
	return t.scan, t.err
}
