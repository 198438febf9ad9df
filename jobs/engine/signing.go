package engine

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/store"
)

// ErrSignature means a manifest's signature is missing or does not match
// any accepted key: the backup may have been tampered with, and it is not
// restored or verified unless the request explicitly allows unsigned
// manifests.
var ErrSignature = errors.New("manifest signature missing or invalid")

// ErrUnsignedRefused means a request asked to use a manifest without a
// valid signature (allow_unsigned) on a server set to refuse that
// (REFUSE_UNSIGNED_RESTORES). It wraps ErrSignature: retrying cannot help.
var ErrUnsignedRefused = fmt.Errorf("%w: allow_unsigned is refused by this server (REFUSE_UNSIGNED_RESTORES)", ErrSignature)

// Signer signs manifests with the current key and accepts signatures by the
// current key or any old one (key rotation: old archives stay verifiable).
//
// Two kinds of key exist. An HMAC key is shared: whoever can verify can also
// sign, so every API host holding it could forge a manifest. An ed25519 key
// pair splits the two: workers sign with the private key, and the API, the
// scheduler and a recovery host hold only public keys, which forge nothing.
// When both are configured, new manifests are signed with ed25519 and HMAC
// signatures are still accepted, which is how a deployment moves over.
type Signer struct {
	current []byte
	accept  [][]byte
	// private signs (nil: this program cannot sign with ed25519); public
	// are the accepted ed25519 keys, public[0] the current one.
	private ed25519.PrivateKey
	public  []ed25519.PublicKey
	// refuseUnsigned refuses every request to use a manifest whose
	// signature does not verify (see RefuseUnsigned).
	refuseUnsigned bool
}

// ed25519Prefix starts an ed25519 signature in a manifest; an HMAC
// signature is bare hex, so the two never mix up.
const ed25519Prefix = "ed25519:"

// NewSigner returns a signer; current may be empty (no signing), old keys
// are accepted for verification only.
func NewSigner(current []byte, old ...[]byte) *Signer {
	s := &Signer{current: current}
	if len(current) > 0 {
		s.accept = append(s.accept, current)
	}
	for _, k := range old {
		if len(k) > 0 {
			s.accept = append(s.accept, k)
		}
	}
	return s
}

// UseEd25519 makes s sign with private (nil: verify only) and accept
// ed25519 signatures by public, and by private's own public key, which is
// then the current one. It returns s, and is meant to be called once,
// before use.
func (s *Signer) UseEd25519(private ed25519.PrivateKey, public ...ed25519.PublicKey) *Signer {
	s.private = private
	if private != nil {
		s.public = append(s.public, private.Public().(ed25519.PublicKey))
	}
	for _, k := range public {
		if !slices.ContainsFunc(s.public, func(have ed25519.PublicKey) bool { return have.Equal(k) }) {
			s.public = append(s.public, k)
		}
	}
	return s
}

// CanSign reports whether this signer can sign new manifests: a program
// holding only public keys verifies but must not write manifests.
func (s *Signer) CanSign() bool { return s != nil && (s.private != nil || len(s.current) > 0) }

// RefuseUnsigned makes the signer refuse allow_unsigned outright, so that
// whoever can queue a task (or write Redis) cannot have a forged manifest
// restored; it has no effect without a key, where nothing is checked. It
// returns s, and is meant to be called once, before use.
func (s *Signer) RefuseUnsigned(on bool) *Signer {
	s.refuseUnsigned = on
	return s
}

// RefusesUnsigned reports whether allow_unsigned is refused.
func (s *Signer) RefusesUnsigned() bool { return s.Enabled() && s.refuseUnsigned }

// Enabled reports whether manifests are checked (and, by the programs that
// write them, signed).
func (s *Signer) Enabled() bool { return s != nil && (len(s.current) > 0 || len(s.public) > 0) }

// KeyFingerprint names a key without revealing it, so that processes can
// compare keys through Redis.
func KeyFingerprint(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	sum := sha256.Sum256(append([]byte("pgbackup manifest signing key\x00"), key...))
	return hex.EncodeToString(sum[:8])
}

// PublicKeyFingerprint names an ed25519 public key.
func PublicKeyFingerprint(k ed25519.PublicKey) string {
	sum := sha256.Sum256(append([]byte("pgbackup manifest public key\x00"), k...))
	return ed25519Prefix + hex.EncodeToString(sum[:8])
}

// Fingerprint is the current key's fingerprint ("" without a key): the
// current ed25519 key's when there is one, since that is what new manifests
// are signed with.
func (s *Signer) Fingerprint() string {
	switch {
	case !s.Enabled():
		return ""
	case len(s.public) > 0:
		return PublicKeyFingerprint(s.public[0])
	}
	return KeyFingerprint(s.current)
}

// OldFingerprints are the fingerprints of the keys accepted besides the
// current one.
func (s *Signer) OldFingerprints() []string {
	var out []string
	for _, k := range s.accept {
		if len(s.public) > 0 || !bytes.Equal(k, s.current) {
			out = append(out, KeyFingerprint(k))
		}
	}
	for _, k := range s.public[min(1, len(s.public)):] {
		out = append(out, PublicKeyFingerprint(k))
	}
	return out
}

// sign sets m's signature over the rest of its content.
func (s *Signer) sign(m *Manifest) error {
	m.Signature = ""
	canon, err := canonicalManifest(m)
	if err != nil {
		return err
	}
	m.Signature, err = s.signCanonical("manifest "+m.Name.String(), canon)
	return err
}

// SignJSON returns the signature of doc, a JSON object, made the way a
// manifest's is: over its canonical form without its "signature" field.
// Other signed documents (the WAL archive's object headers) use it; what
// names the document in errors.
func (s *Signer) SignJSON(what string, doc []byte) (string, error) {
	canon, err := canonicalJSON(doc)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", what, err)
	}
	return s.signCanonical(what, canon)
}

// CheckJSON verifies the "signature" field of doc, a JSON object as it
// was stored, as a manifest's is checked; the error wraps ErrSignature.
func (s *Signer) CheckJSON(what string, doc []byte) error { return s.checkDoc(what, doc) }

func (s *Signer) signCanonical(what string, canon []byte) (string, error) {
	switch {
	case s.private != nil:
		return ed25519Prefix + base64.RawStdEncoding.EncodeToString(ed25519.Sign(s.private, canon)), nil
	case len(s.current) > 0:
		return mac(s.current, canon), nil
	}
	return "", fmt.Errorf("sign %s: %w: this program has only public keys (BACKUP_SIGNING_PUBLIC_KEYS_FILE) and cannot sign; set BACKUP_SIGNING_PRIVATE_KEY_FILE", what, ErrSignature)
}

// check verifies the signature of the manifest as it was stored (raw).
func (s *Signer) check(name Name, raw []byte) error {
	return s.checkDoc("manifest "+name.String(), raw)
}

// checkDoc verifies the signature of the document what as it was stored.
func (s *Signer) checkDoc(what string, raw []byte) error {
	var probe struct {
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSignature, what, err)
	}
	if probe.Signature == "" {
		return fmt.Errorf("%w: %s is not signed", ErrSignature, what)
	}
	canon, err := canonicalJSON(raw)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSignature, what, err)
	}
	if b64, ok := strings.CutPrefix(probe.Signature, ed25519Prefix); ok {
		sig, err := base64.RawStdEncoding.DecodeString(b64)
		if err != nil {
			return fmt.Errorf("%w: %s: ed25519 signature: %w", ErrSignature, what, err)
		}
		for _, k := range s.public {
			if ed25519.Verify(k, canon, sig) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s has an ed25519 signature no configured public key verifies", ErrSignature, what)
	}
	for _, k := range s.accept {
		if hmac.Equal([]byte(mac(k, canon)), []byte(probe.Signature)) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s has a signature no configured key made", ErrSignature, what)
}

func mac(key, data []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func canonicalManifest(m *Manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest %s: %w", m.Name, err)
	}
	return canonicalJSON(b)
}

// canonicalJSON is the manifest's content as signed: its JSON object
// without the signature field, with keys sorted and no white space, and
// numbers kept as written. Working on the generic object rather than the
// struct means a field added by a later version is covered by the
// signature and does not break verification by this one.
func canonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("canonical manifest: %w", err)
	}
	delete(obj, "signature")
	return json.Marshal(obj)
}

// checkSignature enforces signed manifests when this engine has a key.
func (e *Engine) checkSignature(m *Manifest, allowUnsigned bool) error {
	if !e.signer.Enabled() {
		return nil
	}
	if allowUnsigned && e.signer.RefusesUnsigned() {
		return fmt.Errorf("%w (backup %s)", ErrUnsignedRefused, m.Name)
	}
	err := e.signer.check(m.Name, m.raw)
	if err != nil && allowUnsigned {
		e.log.WithError(err).WithField("backup_name", m.Name).Warn("using a manifest without a valid signature, as the request allows")
		return nil
	}
	return err
}

// verdict is the listing's judgement of a manifest's signature: nil when
// this engine has no key or the signature verified, else why not. It is
// kept with the cached manifest (by the object's ETag, like the manifest
// itself), so a warm listing checks nothing again and a failure is logged
// once per process and manifest version.
func (e *Engine) verdict(storeName string, sc *storeCache, o store.ObjectInfo, m *Manifest) error {
	if !e.signer.Enabled() {
		return nil
	}
	e.cache.mu.Lock()
	c, ok := sc.entries[o.Key]
	e.cache.mu.Unlock()
	if ok && c.checked && o.ETag != "" && c.etag == o.ETag {
		return c.sigErr
	}
	err := e.signer.check(m.Name, m.raw)
	if err != nil {
		e.log.WithError(err).WithFields(logrus.Fields{"backup_name": m.Name, "store": storeName}).
			Warn("manifest signature does not verify: the backup is not trusted (not pruned, not restored by default, not counted as good)")
	}
	e.cache.mu.Lock()
	if c, ok := sc.entries[o.Key]; ok && o.ETag != "" && c.etag == o.ETag {
		c.checked, c.sigErr = true, err
		sc.entries[o.Key] = c
	}
	e.cache.mu.Unlock()
	return err
}
