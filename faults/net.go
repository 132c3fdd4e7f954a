//go:build linux

package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
)

// endpoint is a party of the cluster's network: node i (1..n), or the
// clients (0). Faults cut links between two endpoints.
type endpoint int

const clientEndpoint endpoint = 0

func (e endpoint) String() string {
	if e == clientEndpoint {
		return "client"
	}
	return fmt.Sprintf("n%d", int(e))
}

// nodeAddrs are the addresses of one node: where it listens and what it
// tells others (which differ behind the proxy).
type nodeAddrs struct {
	httpListen, raftListen       string
	httpAdvertise, raftAdvertise string
}

// network is what the cluster runs on: namespaces with blackhole routes, or
// a TCP proxy on loopback.
type network interface {
	mode() string
	addrs(i int) nodeAddrs
	// command runs bin on node i's side of the network.
	command(i int, bin string, args ...string) *exec.Cmd
	// clientDial dials from the clients' side: the links faults cut.
	clientDial(ctx context.Context, network, addr string) (net.Conn, error)
	// controlDial dials over links no fault cuts (the harness's own checks),
	// to controlHTTP(i).
	controlDial(ctx context.Context, network, addr string) (net.Conn, error)
	controlHTTP(i int) string
	// cut blocks every connection between a and b, both ways, until healAll.
	cut(a, b endpoint) error
	healAll() error
	// setNodes tells the network which process is which node (pid -> node
	// id); the proxy needs it to tell the sender of a connection.
	setNodes(nodes func() map[int]int)
	// check says why the faults may not have had their effect, if so.
	check() error
	close() error
}

// Network modes.
const (
	modeNetns = "netns"
	modeProxy = "proxy"
)

// chooseMode picks the network: WEIR_FAULTS_MODE when set, else namespaces
// when this process can make them, else the proxy. It returns the reason
// for the choice.
func chooseMode() (string, string) {
	switch m := os.Getenv("WEIR_FAULTS_MODE"); m {
	case modeNetns, modeProxy:
		return m, "WEIR_FAULTS_MODE=" + m
	case "", "auto":
	default:
		return modeProxy, fmt.Sprintf("WEIR_FAULTS_MODE=%q is not netns or proxy; using the proxy", m)
	}
	if err := netnsAvailable(); err != nil {
		return modeProxy, "network namespaces unavailable (" + err.Error() + ")"
	}
	return modeNetns, "root with ip(8): network namespaces"
}

// pairKey orders a link's two endpoints.
func pairKey(a, b endpoint) [2]endpoint {
	if a > b {
		a, b = b, a
	}
	return [2]endpoint{a, b}
}

func commandError(cmd string, args []string, out []byte, err error) error {
	return fmt.Errorf("%s %s: %w: %s", cmd, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
}
