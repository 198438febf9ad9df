package handlers

import (
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/store"
)

// The old service's store flags, kept working exactly as they were. They
// are the only place the API names particular backends; everything else
// takes store names.

// storeFlags are the pair of per-store booleans of one route.
type storeFlags struct{ local, minio string }

var (
	listFlags   = storeFlags{"include_local", "include_minio"}
	deleteFlags = storeFlags{"delete_local", "delete_minio"}
)

// flagsGiven reports whether the request sets either flag.
func (a *API) flagsGiven(c echo.Context, f storeFlags) (bool, error) {
	l, err := queryBool(c, f.local)
	if err != nil {
		return false, err
	}
	m, err := queryBool(c, f.minio)
	if err != nil {
		return false, err
	}
	return l != nil || m != nil, nil
}

// storesFromFlags applies the flags as the old service did: each defaults
// to true, MinIO is left out when not configured, asking for MinIO when it
// is not configured is an error, and both false is an error. Stores the
// old service did not have are kept unless the flags leave nothing.
func (a *API) storesFromFlags(c echo.Context, f storeFlags) ([]string, error) {
	local, _ := queryBool(c, f.local)
	mio, _ := queryBool(c, f.minio)
	if mio != nil && *mio && !a.hasStore(store.MinIOName) {
		return nil, badRequest("%s is true but no MinIO store is configured on this service", f.minio)
	}
	var out []string
	for _, name := range a.d.Backups.StoreNames() {
		switch {
		case name == store.LocalName && local != nil && !*local:
		case name == store.MinIOName && mio != nil && !*mio:
		default:
			out = append(out, name)
		}
	}
	if len(out) == 0 || (local != nil && !*local && mio != nil && !*mio) {
		return nil, badRequest("%s and %s are both false: nothing to do", f.local, f.minio)
	}
	return out, nil
}

// storesForUpload maps upload_to_minio: the local store, plus MinIO when
// the flag is true. Without the flag a backup goes to every configured
// store (which for the old service's two stores is the same thing).
func (a *API) storesForUpload(upload *bool) ([]string, error) {
	if upload == nil {
		return a.d.Backups.StoreNames(), nil
	}
	stores := []string{store.LocalName}
	if *upload {
		if !a.hasStore(store.MinIOName) {
			return nil, badRequest("upload_to_minio is true but no MinIO store is configured on this service")
		}
		stores = append(stores, store.MinIOName)
	}
	return stores, nil
}

// fromFlag maps download_from_minio: MinIO when true, the local store when
// false.
func (a *API) fromFlag(download bool) (string, error) {
	if !download {
		return store.LocalName, nil
	}
	if !a.hasStore(store.MinIOName) {
		return "", badRequest("download_from_minio is true but no MinIO store is configured on this service")
	}
	return store.MinIOName, nil
}

func (a *API) hasStore(name string) bool { return slices.Contains(a.d.Backups.StoreNames(), name) }
