// Package configs decodes the settings shared by the api, worker and
// scheduler, and checks their syntax.
//
// Order of precedence: defaults in code, then the YAML file named by
// CONFIG_FILE (optional), then environment variables. The environment names
// are those of the Python service this replaces, so existing deployments keep
// working unchanged.
//
// configs is data: it reads no files and builds no objects. Reading the
// files that settings name (CONFIG_FILE itself, password files, keys,
// identities, tokens), checking values against the rules of the packages
// that use them, and building those packages' objects happen once, where
// the program wires itself (cmd/internal/wire). Every error names its
// setting through a *SettingError.
package configs
