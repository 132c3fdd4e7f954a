//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on the default mux
	"os"
)

// Profiling builds (go build -tags pprof) serve net/http/pprof on
// $WEIR_PPROF_ADDR, for finding where the time goes under load.
func init() {
	if addr := os.Getenv("WEIR_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
