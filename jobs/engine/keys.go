package engine

// Prefix is where archives and manifests live in every store, as in the
// old service.
const Prefix = "postgres/"

const manifestSuffix = ".manifest.json"

// ManifestKey is the store key of a backup's manifest.
func ManifestKey(name Name) string { return Prefix + name.s + manifestSuffix }

// ArchiveKey is the store key of a backup's archive: the format's
// extension, then the codec's (".dump.zst").
func ArchiveKey(name Name, f Format, c Codec) string { return archiveKey(name, f, c, false) }

// archiveKey adds ".age" for encrypted archives.
func archiveKey(name Name, f Format, c Codec, encrypted bool) string {
	key := Prefix + name.s + f.Extension() + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// serverArchiveKey is one database's archive in a whole-server backup:
// postgres/<name>/<database><extensions>. Backup names have no '/', so no
// other backup's key has this shape.
func serverArchiveKey(name Name, db string, f Format, c Codec, encrypted bool) string {
	key := Prefix + name.s + "/" + db + f.Extension() + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// globalsKey is the companion's key.
func globalsKey(name Name, c Codec, encrypted bool) string {
	return besideKey(name, "+globals.sql", c, encrypted)
}

// bucketArchiveKey is a bucket backup's key.
func bucketArchiveKey(name Name, c Codec, encrypted bool) string {
	return besideKey(name, "+bucket.tar", c, encrypted)
}

// baseArchiveKey is a base backup's tar (pg_basebackup's base.tar).
func baseArchiveKey(name Name, c Codec, encrypted bool) string {
	return besideKey(name, "+base.tar", c, encrypted)
}

// backupManifestKey is the companion of a base backup holding
// PostgreSQL's backup_manifest.
func backupManifestKey(name Name, c Codec, encrypted bool) string {
	return besideKey(name, "+backup_manifest.json", c, encrypted)
}

// besideKey is the key of an object named after a backup with a suffix
// starting with '+', then the codec's and encryption's extensions. '+'
// never appears in backup names, so it cannot be another backup's key.
func besideKey(name Name, suffix string, c Codec, encrypted bool) string {
	key := Prefix + name.s + suffix + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// manifestName parses the backup name out of a manifest's key, for keys
// a store listing returns.
func manifestName(key string) (Name, bool) {
	if len(key) <= len(Prefix)+len(manifestSuffix) || key[:len(Prefix)] != Prefix || key[len(key)-len(manifestSuffix):] != manifestSuffix {
		return Name{}, false
	}
	name, err := ParseName(key[len(Prefix) : len(key)-len(manifestSuffix)])
	return name, err == nil
}

// IsManifestKey reports whether key is a backup's manifest, for programs
// that look at a store's files without opening it.
func IsManifestKey(key string) bool {
	_, ok := manifestName(key)
	return ok
}
