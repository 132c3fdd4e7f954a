package main

import "syscall"

// childSysProcAttr puts a local-cluster node in its own process group, so a
// terminal's Ctrl-C goes to local-cluster alone, and has the kernel send it
// SIGTERM should local-cluster die without stopping it (no orphans, even
// after a kill -9).
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
