// Package web serves the backups page: a single static HTML file, embedded
// in the binary, that lists backups and runs backups, restores, verifies
// and deletes through the JSON API with the token the user pastes in. The
// page itself holds no data, so serving it needs no authentication; every
// call it makes goes through the API's own checks.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page's files from the root of the path it is given.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServer(http.FS(sub))
}
