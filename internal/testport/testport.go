// Package testport gives tests loopback addresses to listen on. Ports come
// from below the kernel's ephemeral range (ip_local_port_range, usually
// 32768-60999), where every process's outgoing connections take their local
// ports: a port that ":0" handed out can be taken by any connection between
// a test choosing it and a node binding it, which a busy machine does.
package testport

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// given holds the ports handed out in this test process, so two calls never
// return the same one (a random draw would, now and then, where ":0" does
// not). Test-only state, shared by the process's tests by design.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Addr returns a loopback host:port that was free a moment ago.
func Addr(t testing.TB) string {
	t.Helper()
	for range 1000 {
		p := 10000 + rand.IntN(22000) // 10000..31999
		given.Lock()
		taken := given.ports[p]
		given.ports[p] = true
		given.Unlock()
		if taken {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		if err := l.Close(); err != nil {
			t.Fatalf("free the probe listener on %s: %v", addr, err)
		}
		return addr
	}
	t.Fatal("no free loopback port below the ephemeral range in 1000 tries")
	return ""
}
