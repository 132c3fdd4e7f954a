package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"weir/server"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], newApp()))
}

// app is everything the commands take from the process.
type app struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	notify         func(chan<- os.Signal, ...os.Signal)
	stopNotify     func(chan<- os.Signal)
	exit           func(code int)
	newNode        func(server.Config, *slog.Logger) (runner, error)
	// shutdownGrace is how long past shutdown_timeout_ms serve waits for Run
	// to return before giving up on it: Run enforces the timeout itself, this
	// only backs it up.
	shutdownGrace time.Duration
	// global holds the root's persistent flags (--server, -o, --timeout)
	// once they are parsed; the client commands read them.
	global globalFlags
}

// runner is what serve needs of a node.
type runner interface {
	Run(ctx context.Context) error
}

func newApp() *app {
	return &app{
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		lookupEnv:  os.LookupEnv,
		notify:     signal.Notify,
		stopNotify: signal.Stop,
		exit:       os.Exit,
		newNode: func(cfg server.Config, logger *slog.Logger) (runner, error) {
			return server.New(cfg, logger)
		},
		shutdownGrace: 5 * time.Second,
	}
}

// run executes the command line and returns the exit code, having printed
// any error as one line on stderr.
func run(ctx context.Context, args []string, a *app) int {
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(a.stderr, "weir: %v\n", err)
	return exitCode(err)
}

// exitError gives an error its exit code: 2 for bad usage and bad
// configuration (as flag parsing and most Unix tools do), 1 for failures.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{code: 2, err: err} }

func exitCode(err error) int {
	if ee, ok := errors.AsType[*exitError](err); ok {
		return ee.code
	}
	return 1
}
