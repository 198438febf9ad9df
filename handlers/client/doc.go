// Package client is the typed Go client of pgbackup's HTTP API, the one
// every program of ours uses to talk to a running service (the CLI's
// remote mode, the soak, the demo, the benchmark, the end-to-end tests).
//
// Requests and responses are plain structs named after the schemas of
// handlers/openapi.json; client_test.go checks every method's route, every
// request field and the decoding of every response against that document,
// so the client cannot drift from the API unnoticed. The package imports
// nothing of the server (handlers, jobs): it speaks only the wire format.
//
// Every call takes a context. An answer outside 2xx is an *Error carrying
// the status, the API's message and the headers a caller acts on
// (Retry-After, X-Request-ID); a request that never got an answer wraps
// ErrUnreachable.
package client
