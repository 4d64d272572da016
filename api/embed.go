// Package api embeds the HTTP contract, api/openapi.yaml, so the service serves the very document the
// tests validate its responses against.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
