// Package httpapi serves Weir's REST API (/v1/..., see API.md) and the
// node-to-node endpoints (/internal/v1/...) with echo. It parses and checks
// requests, turns record bodies into record batches, and renders replies and
// errors in the API's JSON shapes; the work itself is done by the services
// behind the small Backend interface, and records are read through package
// fetch, here and for the partitions of a request that other nodes lead
// (read.go: POST /internal/v1/read, one per leader node).
package httpapi
