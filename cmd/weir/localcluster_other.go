//go:build !linux

package main

import "syscall"

// childSysProcAttr puts a local-cluster node in its own process group, so a
// terminal's Ctrl-C goes to local-cluster alone.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
