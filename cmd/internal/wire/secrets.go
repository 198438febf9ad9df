package wire

import (
	"bytes"
	"errors"
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
	s.Signer = engine.NewSigner(current, old...).RefuseUnsigned(c.RefusesUnsignedRestores())
	return nil
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
