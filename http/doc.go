// Package httpapi serves Weir's REST API (/v1/..., see API.md) and the
// node-to-node endpoints (/internal/v1/...) with echo. It parses and checks
// requests, turns record bodies into record batches, and renders replies and
// errors in the API's JSON shapes; the work itself is done by the services
// behind the small Backend interface.
package httpapi
