package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
)

// minSigningKeyLen keeps guessable signing keys out.
const minSigningKeyLen = 32

// minTokenLen keeps guessable tokens out: 16 characters of a random
// alphabet are far beyond brute force over HTTP.
const minTokenLen = 16

// buildSigner is the manifest signer from BACKUP_SIGNING_KEY(_FILE) and
// BACKUP_SIGNING_OLD_KEYS(_FILE).
func (s *Setup) buildSigner() error {
	c := s.Config
	cur := strings.TrimSpace(c.BackupSigningKey)
	if c.BackupSigningKeyFile != "" {
		b, err := os.ReadFile(c.BackupSigningKeyFile)
		if err != nil {
			return configs.Bad("BACKUP_SIGNING_KEY_FILE", "%w", err)
		}
		cur = strings.TrimSpace(string(b))
	}
	if cur != "" && len(cur) < minSigningKeyLen {
		return configs.Bad("BACKUP_SIGNING_KEY", "must be at least %d characters; it has %d", minSigningKeyLen, len(cur))
	}
	oldKeys, err := listWithFile(c.BackupSigningOldKeys, c.BackupSigningOldKeysFile, "BACKUP_SIGNING_OLD_KEYS_FILE")
	if err != nil {
		return err
	}
	var current []byte
	if cur != "" {
		current = []byte(cur)
	}
	old := make([][]byte, len(oldKeys))
	for i, k := range oldKeys {
		old[i] = []byte(k)
	}
	private, public, err := ed25519Keys(c)
	if err != nil {
		return err
	}
	s.Signer = engine.NewSigner(current, old...).UseEd25519(private, public...).RefuseUnsigned(c.RefusesUnsignedRestores())
	return nil
}

// ed25519Keys reads BACKUP_SIGNING_PRIVATE_KEY_FILE and
// BACKUP_SIGNING_PUBLIC_KEYS_FILE (PEM, as openssl writes them).
func ed25519Keys(c configs.Config) (ed25519.PrivateKey, []ed25519.PublicKey, error) {
	var private ed25519.PrivateKey
	if c.BackupSigningPrivateKeyFile != "" {
		blocks, err := pemBlocks(c.BackupSigningPrivateKeyFile, "PRIVATE KEY")
		if err != nil {
			return nil, nil, configs.Bad("BACKUP_SIGNING_PRIVATE_KEY_FILE", "%w", err)
		}
		if len(blocks) != 1 {
			return nil, nil, configs.Bad("BACKUP_SIGNING_PRIVATE_KEY_FILE", "holds %d private keys, want one", len(blocks))
		}
		k, err := x509.ParsePKCS8PrivateKey(blocks[0])
		if err != nil {
			return nil, nil, configs.Bad("BACKUP_SIGNING_PRIVATE_KEY_FILE", "%w", err)
		}
		var ok bool
		if private, ok = k.(ed25519.PrivateKey); !ok {
			return nil, nil, configs.Bad("BACKUP_SIGNING_PRIVATE_KEY_FILE", "holds a %T, want an ed25519 key (openssl genpkey -algorithm ed25519)", k)
		}
	}
	var public []ed25519.PublicKey
	if c.BackupSigningPublicKeysFile != "" {
		blocks, err := pemBlocks(c.BackupSigningPublicKeysFile, "PUBLIC KEY")
		if err == nil && len(blocks) == 0 {
			err = errors.New("holds no PUBLIC KEY block (openssl pkey -pubout writes one)")
		}
		if err != nil {
			return nil, nil, configs.Bad("BACKUP_SIGNING_PUBLIC_KEYS_FILE", "%w", err)
		}
		for i, b := range blocks {
			k, err := x509.ParsePKIXPublicKey(b)
			if err != nil {
				return nil, nil, configs.Bad("BACKUP_SIGNING_PUBLIC_KEYS_FILE", "key %d: %w", i+1, err)
			}
			pk, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, nil, configs.Bad("BACKUP_SIGNING_PUBLIC_KEYS_FILE", "key %d is a %T, want ed25519", i+1, k)
			}
			public = append(public, pk)
		}
		// The private key's own public key is the current one: a file
		// whose first key is another would have this program sign with a
		// key the others do not treat as current.
		if private != nil && !public[0].Equal(private.Public()) {
			return nil, nil, configs.Bad("BACKUP_SIGNING_PUBLIC_KEYS_FILE", "its first key is not BACKUP_SIGNING_PRIVATE_KEY_FILE's public key; put the current key first")
		}
	}
	return private, public, nil
}

// pemBlocks returns the DER bytes of every PEM block of the given type in
// the file, and fails on a block of another type (a certificate or an RSA
// key given by mistake).
func pemBlocks(path, typ string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != typ {
			return nil, fmt.Errorf("holds a %q PEM block, want %q", b.Type, typ)
		}
		out = append(out, b.Bytes)
	}
	if len(out) == 0 && typ == "PRIVATE KEY" {
		return nil, fmt.Errorf("holds no PEM %q block (openssl genpkey -algorithm ed25519 writes one)", typ)
	}
	return out, nil
}

// buildEncryption is the archive encryption from
// ENCRYPTION_RECIPIENTS(_FILE) and ENCRYPTION_IDENTITY_FILE.
func (s *Setup) buildEncryption() error {
	c := s.Config
	recipients, err := listWithFile(c.EncryptionRecipients, c.EncryptionRecipientsFile, "ENCRYPTION_RECIPIENTS_FILE")
	if err != nil {
		return err
	}
	recipients = slices.DeleteFunc(recipients, func(r string) bool { return strings.HasPrefix(r, "#") })
	var ids io.Reader
	// Only workers decrypt; the API and scheduler never open the file.
	if c.EncryptionIdentityFile != "" && s.program.readsTaskSecrets() {
		b, err := os.ReadFile(c.EncryptionIdentityFile)
		if err != nil {
			return configs.Bad("ENCRYPTION_IDENTITY_FILE", "%w", err)
		}
		ids = bytes.NewReader(b)
	}
	enc, err := engine.NewEncryption(recipients, ids)
	switch {
	case errors.Is(err, engine.ErrBadIdentities):
		return configs.Bad("ENCRYPTION_IDENTITY_FILE", "%w", err)
	case err != nil:
		return configs.Bad("ENCRYPTION_RECIPIENTS", "%w", err)
	}
	s.Encryption = enc
	return nil
}

// APITokens are the API's admin and viewer tokens: API_*_TOKENS and the
// files API_*_TOKENS_FILE name. Only the API calls it, so the other
// programs need not see those files.
func APITokens(c configs.Config) (admin, viewer []string, err error) {
	admin, adminErr := tokens(c.APIAdminTokens, c.APIAdminTokensFile, "API_ADMIN_TOKENS")
	viewer, viewerErr := tokens(c.APIViewerTokens, c.APIViewerTokensFile, "API_VIEWER_TOKENS")
	return admin, viewer, errors.Join(adminErr, viewerErr)
}

func tokens(list, file, setting string) ([]string, error) {
	out, err := listWithFile(list, file, setting+"_FILE")
	if err != nil {
		return nil, err
	}
	for _, t := range out {
		if len(t) < minTokenLen {
			return nil, configs.Bad(setting, "API tokens must be at least %d characters; one has %d", minTokenLen, len(t))
		}
	}
	return out, nil
}

// listWithFile is a secret list given inline (comma-separated) plus the
// contents of file (one per line or comma-separated), if named;
// fileSetting names the file's setting in errors.
func listWithFile(inline, file, fileSetting string) ([]string, error) {
	raw := inline
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, configs.Bad(fileSetting, "%w", err)
		}
		raw += "," + string(b)
	}
	var out []string
	for _, f := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out, nil
}
