package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// ErrNoIdentity means an encrypted archive cannot be read here: this
// worker has no identity (ENCRYPTION_IDENTITY_FILE) matching any of the
// archive's recipients. Retrying cannot help.
var ErrNoIdentity = errors.New("no identity for this encrypted archive")

// ErrBadIdentities marks a NewEncryption error in the identities rather
// than the recipients, so that callers can name the setting at fault
// without reading the message.
var ErrBadIdentities = errors.New("identities")

// Encryption encrypts archives to age recipients in the stream, after
// compression, and decrypts them with the identities a worker holds.
type Encryption struct {
	recipients   []age.Recipient
	fingerprints []string
	identities   []age.Identity
}

// NewEncryption parses age public keys ("age1...") to encrypt to, and
// identities (the contents of an age identity file, possibly several keys)
// to decrypt with. Either may be empty: a worker that only backs up needs no
// identity, and one that only restores needs no recipient.
func NewEncryption(recipients []string, identities io.Reader) (*Encryption, error) {
	e := &Encryption{}
	for _, r := range recipients {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		rec, err := age.ParseX25519Recipient(r)
		if err != nil {
			return nil, fmt.Errorf("recipient %q: %w", truncateString(r, 20), err)
		}
		e.recipients = append(e.recipients, rec)
		e.fingerprints = append(e.fingerprints, RecipientFingerprint(r))
	}
	if identities != nil {
		ids, err := age.ParseIdentities(identities)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadIdentities, err)
		}
		e.identities = ids
	}
	return e, nil
}

// RecipientFingerprint names a recipient in manifests: the first 16 hex
// digits of the SHA-256 of its public key.
func RecipientFingerprint(publicKey string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(publicKey)))
	return hex.EncodeToString(sum[:8])
}

// encrypts reports whether new archives are encrypted.
func (e *Encryption) encrypts() bool { return e != nil && len(e.recipients) > 0 }

// encryptStream encrypts src in a goroutine (see pipeStage).
func (e *Encryption) encryptStream(src io.Reader) (io.Reader, func()) {
	if !e.encrypts() {
		return src, func() {}
	}
	return pipeStage(src, func(w io.Writer) (io.WriteCloser, error) { return age.Encrypt(w, e.recipients...) })
}

// decrypt returns the plaintext of an encrypted archive's stream. It reads
// the age header at once, so a missing or wrong identity is known before
// anything else happens.
func (e *Encryption) decrypt(m *Manifest, stored io.Reader) (io.Reader, error) {
	if !m.Encrypted {
		return stored, nil
	}
	if e == nil || len(e.identities) == 0 {
		return nil, fmt.Errorf("%w: %s is encrypted to %v and this worker has no ENCRYPTION_IDENTITY_FILE", ErrNoIdentity, m.Name, m.Recipients)
	}
	r, err := age.Decrypt(stored, e.identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("%w: %s is encrypted to %v", ErrNoIdentity, m.Name, m.Recipients)
		}
		return nil, fmt.Errorf("%w: %s: %w", errCorrupt, m.Name, err)
	}
	return r, nil
}

// encryptedExtension is appended to an encrypted archive's key.
const encryptedExtension = ".age"

// pipeStage runs wrap over src in a goroutine and returns what it writes
// as a stream: a stage between pg_dump and the stores. An error of src or
// of the stage reaches the reader; stop must be called once the stream is
// no longer read, and waits for the goroutine, so a cancelled backup leaves
// none behind.
func pipeStage(src io.Reader, wrap func(io.Writer) (io.WriteCloser, error)) (io.Reader, func()) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w, err := wrap(pw)
		if err == nil {
			_, err = io.Copy(w, src)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err) // nil: the reader sees a clean EOF
	}()
	return pr, func() {
		// Unblock the stage if the stores stopped reading early.
		_ = pr.CloseWithError(errStopped)
		<-done
	}
}

// Encrypts reports whether new objects are encrypted (some recipient is
// configured).
func (e *Encryption) Encrypts() bool { return e.encrypts() }

// Fingerprints names the recipients new objects are encrypted to.
func (e *Encryption) Fingerprints() []string {
	if e == nil {
		return nil
	}
	return append([]string(nil), e.fingerprints...)
}

// NewEncrypter returns a writer that encrypts into w to every recipient;
// Close finishes the stream. It fails when there is no recipient.
func (e *Encryption) NewEncrypter(w io.Writer) (io.WriteCloser, error) {
	if !e.encrypts() {
		return nil, fmt.Errorf("encrypt: no recipient configured")
	}
	return age.Encrypt(w, e.recipients...)
}

// Decrypt returns the plaintext of an encrypted object named what, like a
// restore does for an archive: ErrNoIdentity without a matching identity.
func (e *Encryption) Decrypt(what string, stored io.Reader) (io.Reader, error) {
	if e == nil || len(e.identities) == 0 {
		return nil, fmt.Errorf("%w: %s is encrypted and this program has no ENCRYPTION_IDENTITY_FILE", ErrNoIdentity, what)
	}
	r, err := age.Decrypt(stored, e.identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("%w: %s", ErrNoIdentity, what)
		}
		return nil, fmt.Errorf("%w: %s: %w", errCorrupt, what, err)
	}
	return r, nil
}
