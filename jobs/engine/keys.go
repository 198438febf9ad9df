package engine

// Prefix is where archives and manifests live in every store, as in the
// old service.
const Prefix = "postgres/"

const manifestSuffix = ".manifest.json"

// ManifestKey is the store key of a backup's manifest.
func ManifestKey(name string) string { return Prefix + name + manifestSuffix }

// ArchiveKey is the store key of a backup's archive: the format's
// extension, then the codec's (".dump.zst").
func ArchiveKey(name string, f Format, c Codec) string { return archiveKey(name, f, c, false) }

// archiveKey adds ".age" for encrypted archives.
func archiveKey(name string, f Format, c Codec, encrypted bool) string {
	key := Prefix + name + f.Extension() + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// serverArchiveKey is one database's archive in a whole-server backup:
// postgres/<name>/<database><extensions>. Backup names have no '/', so no
// other backup's key has this shape.
func serverArchiveKey(name, db string, f Format, c Codec, encrypted bool) string {
	key := Prefix + name + "/" + db + f.Extension() + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// globalsKey is the companion's key. '+' never appears in backup names,
// so it cannot be another backup's key.
func globalsKey(name string, c Codec, encrypted bool) string {
	key := Prefix + name + "+globals.sql" + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

// bucketArchiveKey is a bucket backup's key; '+' never appears in backup
// names, so it cannot be a database backup's key.
func bucketArchiveKey(name string, c Codec, encrypted bool) string {
	key := Prefix + name + "+bucket.tar" + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}

func manifestName(key string) (string, bool) {
	if len(key) <= len(Prefix)+len(manifestSuffix) || key[:len(Prefix)] != Prefix || key[len(key)-len(manifestSuffix):] != manifestSuffix {
		return "", false
	}
	name := key[len(Prefix) : len(key)-len(manifestSuffix)]
	return name, ValidateName(name) == nil
}
