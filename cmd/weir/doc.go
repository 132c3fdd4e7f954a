// Command weir is the one Weir binary. `weir serve` runs a node; the other
// subcommands are clients of the REST API.
//
// Each subcommand lives in its own file as a newXxxCmd(*app) constructor and
// is added to the tree in newRootCmd (root.go). Commands reach the process
// (output, environment, signals, exit) only through app, so tests can run
// them in-process.
package main
