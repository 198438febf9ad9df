package wal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/autograph/pgbackup/jobs/engine"
)

// Every object of the archive is one line of signed JSON (its header), a
// newline, then the payload: the WAL bytes compressed with the codec, then
// encrypted with age when recipients are configured. The header travels in
// the object rather than in a sidecar so that an object and its checksum
// are published together (a store's Put is atomic): a crash can never
// leave one without the other, and the keys are deterministic, so an orphan
// could never be replaced (no object is rewritten). By hand:
// `tail -n +2 OBJECT | age -d -i KEY | zstd -d` gives the WAL back.

// headerFormat names the header's version.
const headerFormat = "pgbackup-wal/1"

// maxHeader bounds a header line; ours are a few hundred bytes.
const maxHeader = 16 << 10

// header is an object's signed description. The signature covers every
// field, so the key (an object copied elsewhere is refused), the LSN range
// and both checksums are vouched for. LSNs are 16 hex digits.
type header struct {
	Format   string     `json:"format"`
	Target   string     `json:"target"`
	Key      string     `json:"key"` // without extensions
	Kind     objectKind `json:"kind"`
	Timeline uint32     `json:"timeline"`
	// SegmentSize is the archive's wal_segment_size: a reader set up
	// with another one is told so rather than seeing every key as wrong.
	SegmentSize uint64 `json:"segment_size"`
	Start       string `json:"start,omitempty"`
	End         string `json:"end,omitempty"`
	// ParentTimeline and SwitchLSN are read from a history file, so that
	// walking the chain never needs to decrypt one.
	ParentTimeline uint32    `json:"parent_timeline,omitempty"`
	SwitchLSN      string    `json:"switch_lsn,omitempty"`
	RawSize        int64     `json:"raw_size"`
	RawSHA256      string    `json:"raw_sha256"`
	Codec          string    `json:"codec,omitempty"`
	Encrypted      bool      `json:"encrypted,omitempty"`
	Recipients     []string  `json:"recipients,omitempty"`
	PayloadSize    int64     `json:"payload_size"`
	PayloadSHA256  string    `json:"payload_sha256"`
	Created        time.Time `json:"created"`
	Signature      string    `json:"signature,omitempty"`
}

func lsnHex(l LSN) string { return fmt.Sprintf("%016X", uint64(l)) }

func parseLSNHex(s string) (LSN, error) {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil || len(s) != 16 {
		return 0, fmt.Errorf("lsn %q: want 16 hex digits", s)
	}
	return LSN(v), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// encodeObject builds an object: the payload from raw, then the signed
// header describing both.
func (a *StoreArchive) encodeObject(h header, raw []byte) ([]byte, error) {
	h.Format, h.Target, h.Created, h.SegmentSize = headerFormat, a.target, time.Now().UTC(), a.seg()
	h.RawSize, h.RawSHA256 = int64(len(raw)), sha256Hex(raw)
	h.Codec = a.codec.String()
	var payload bytes.Buffer
	w := io.WriteCloser(nopCloser{&payload})
	if a.enc.Encrypts() {
		ew, err := a.enc.NewEncrypter(&payload)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", h.Key, err)
		}
		w, h.Encrypted, h.Recipients = ew, true, a.enc.Fingerprints()
	}
	cw, err := a.codec.NewEncoder(w)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", h.Key, err)
	}
	if _, err := cw.Write(raw); err != nil {
		return nil, fmt.Errorf("encode %s: %w", h.Key, err)
	}
	if err := cw.Close(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", h.Key, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", h.Key, err)
	}
	h.PayloadSize, h.PayloadSHA256 = int64(payload.Len()), sha256Hex(payload.Bytes())
	line, err := a.signHeader(h)
	if err != nil {
		return nil, err
	}
	return append(append(line, '\n'), payload.Bytes()...), nil
}

// signHeader marshals h with its signature; without keys it is unsigned,
// as manifests are.
func (a *StoreArchive) signHeader(h header) ([]byte, error) {
	h.Signature = ""
	line, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header %s: %w", h.Key, err)
	}
	if !a.signer.Enabled() {
		return line, nil
	}
	if h.Signature, err = a.signer.SignJSON("wal object "+h.Key, line); err != nil {
		return nil, err
	}
	return json.Marshal(h)
}

// readHeader reads and checks an object's header line from r: its
// signature (when this archive has keys) and that it describes the object
// stored under pk, so that an object moved to another key is refused.
func (a *StoreArchive) readHeader(r *bufio.Reader, pk parsedKey) (header, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return header{}, fmt.Errorf("%w: %s: header: %w", ErrCorrupt, pk.base, err)
	}
	return a.checkHeader(line[:len(line)-1], pk, a.seg())
}

// checkHeader parses and checks header line (without its newline) of the
// object stored under pk in an archive of segment size segSize.
func (a *StoreArchive) checkHeader(line []byte, pk parsedKey, segSize uint64) (header, error) {
	var h header
	if err := json.Unmarshal(line, &h); err != nil {
		return header{}, fmt.Errorf("%w: %s: header: %w", ErrCorrupt, pk.base, err)
	}
	if a.signer.Enabled() {
		if err := a.signer.CheckJSON("wal object "+pk.base, line); err != nil {
			return header{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	if h.SegmentSize != segSize {
		return header{}, fmt.Errorf("%w: %s: written with segment size %d, this archive's is %d", ErrCorrupt, pk.base, h.SegmentSize, segSize)
	}
	want := header{Format: headerFormat, Target: a.target, Key: pk.base, Kind: pk.kind, Timeline: pk.tli}
	if pk.kind != kindHistory {
		want.Start, want.End = lsnHex(pk.start), lsnHex(pk.end)
	}
	if h.Format != want.Format || h.Target != want.Target || h.Key != want.Key || h.Kind != want.Kind ||
		h.Timeline != want.Timeline || h.Start != want.Start || h.End != want.End {
		return header{}, fmt.Errorf("%w: %s: header describes %s %s of %s (%s-%s), not this key", ErrCorrupt, pk.base, h.Kind, h.Key, h.Target, h.Start, h.End)
	}
	if pk.kind == kindHistory {
		// The walk follows parent to child: a parent not before its child
		// (possible only unsigned) would make it loop.
		if _, err := parseLSNHex(h.SwitchLSN); err != nil || h.ParentTimeline >= h.Timeline {
			return header{}, fmt.Errorf("%w: %s: history names parent %d at %q", ErrCorrupt, pk.base, h.ParentTimeline, h.SwitchLSN)
		}
	}
	if pk.kind != kindHistory && h.RawSize != int64(pk.end-pk.start) {
		return header{}, fmt.Errorf("%w: %s: header says %d bytes for a range of %d", ErrCorrupt, pk.base, h.RawSize, pk.end-pk.start)
	}
	return h, nil
}

// decodePayload checks the stored payload against the signed header and
// returns the WAL bytes, bounded by the recorded raw size.
func (a *StoreArchive) decodePayload(h header, payload []byte) ([]byte, error) {
	if int64(len(payload)) != h.PayloadSize || sha256Hex(payload) != h.PayloadSHA256 {
		return nil, fmt.Errorf("%w: %s: payload does not match its signed checksum", ErrCorrupt, h.Key)
	}
	// Unsigned archives trust the header as written: bound what decoding
	// may yield by what such an object can hold at most.
	if h.RawSize < 0 || uint64(h.RawSize) > a.seg() {
		return nil, fmt.Errorf("%w: %s: raw size %d is more than a segment", ErrCorrupt, h.Key, h.RawSize)
	}
	var r io.Reader = bytes.NewReader(payload)
	if h.Encrypted {
		dr, err := a.enc.Decrypt(h.Key, r)
		if err != nil {
			return nil, err
		}
		r = dr
	}
	codec, err := engine.ParseCodec(h.Codec)
	if h.Codec == "" {
		codec, err = engine.Codec{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, h.Key, err)
	}
	dec, err := codec.NewDecoder(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, h.Key, err)
	}
	defer dec.Close()
	raw, err := io.ReadAll(io.LimitReader(dec, h.RawSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: decode: %w", ErrCorrupt, h.Key, err)
	}
	if int64(len(raw)) != h.RawSize || sha256Hex(raw) != h.RawSHA256 {
		return nil, fmt.Errorf("%w: %s: decoded bytes do not match their signed checksum", ErrCorrupt, h.Key)
	}
	return raw, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
