package handlers

import _ "embed"

// openAPIDocument is the OpenAPI 3.1 description of every route, served at
// GET /api/openapi.json. TestOpenAPIRoutes keeps it and the router in step;
// TestResponsesMatchOpenAPI checks real responses against its schemas.
//
//go:embed openapi.json
var openAPIDocument []byte
