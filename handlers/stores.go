package handlers

import (
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Requests name stores by the names the engine reports (StoreNames): the
// API knows no backend by name itself, apart from the old service's flags,
// which compat.go maps onto names.

// checkStores validates an explicit list of store names: at least one,
// each configured; duplicates are dropped, order is kept.
func (a *API) checkStores(field string, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, badRequest("%s must name at least one store (configured: %s)", field, a.configured())
	}
	var out []string
	for _, n := range names {
		if !slices.Contains(a.d.Backups.StoreNames(), n) {
			return nil, badRequest("%s: store %q is not configured (configured: %s)", field, truncate(n, 40), a.configured())
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (a *API) configured() string { return strings.Join(a.d.Backups.StoreNames(), ", ") }

// storesQuery reads "stores" from the query string: comma-separated, or
// repeated (?stores=a&stores=b). ok is false when it is absent.
func storesQuery(c echo.Context) (names []string, ok bool) {
	raw, ok := c.QueryParams()["stores"]
	if !ok {
		return nil, false
	}
	for _, v := range raw {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	return names, true
}

// readFrom validates the store a restore or verify reads from: "from" by
// name, or the old download_from_minio flag; "" means the first store
// that holds the backup.
func (a *API) readFrom(from *string, downloadFromMinio *bool) (string, error) {
	if from != nil && downloadFromMinio != nil {
		return "", badRequest("give either from or download_from_minio, not both")
	}
	if downloadFromMinio != nil {
		return a.fromFlag(*downloadFromMinio)
	}
	if from == nil || *from == "" {
		return "", nil
	}
	names, err := a.checkStores("from", []string{*from})
	if err != nil {
		return "", err
	}
	return names[0], nil
}

// selectedStores decides which stores a list or delete covers: the JSON
// body's "stores", the query's "stores", or the old per-store flags; all
// configured stores when none is given.
func (a *API) selectedStores(c echo.Context, body []string, flags storeFlags) ([]string, error) {
	query, inQuery := storesQuery(c)
	given, err := a.flagsGiven(c, flags)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, set := range []bool{body != nil, inQuery, given} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, badRequest("give the stores one way only: \"stores\" in the body, ?stores=, or %s/%s", flags.local, flags.minio)
	case body != nil:
		return a.checkStores("stores", body)
	case inQuery:
		return a.checkStores("stores", query)
	case given:
		return a.storesFromFlags(c, flags)
	}
	return a.d.Backups.StoreNames(), nil
}

// createStores decides where a backup is written: "stores" by name, or the
// old upload_to_minio flag.
func (a *API) createStores(c echo.Context, body []string, uploadToMinio *bool) ([]string, error) {
	query, inQuery := storesQuery(c)
	switch {
	case (body != nil || inQuery) && uploadToMinio != nil:
		return nil, badRequest("give either stores or upload_to_minio, not both")
	case body != nil && inQuery:
		return nil, badRequest("give stores in the body or in the query, not both")
	case body != nil:
		return a.checkStores("stores", body)
	case inQuery:
		return a.checkStores("stores", query)
	}
	return a.storesForUpload(uploadToMinio)
}

func listOf(name string) []string {
	if name == "" {
		return nil
	}
	return []string{name}
}
