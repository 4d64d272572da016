// Package migrations holds the goose SQL migrations, embedded so the binary migrates itself.
package migrations

import "embed"

// FS is the migration files.
//
//go:embed *.sql
var FS embed.FS
