package metadata

import (
	"fmt"
	"net"
	"strconv"
)

// CheckAddr checks a host:port address: a numeric port from 1 to 65535 and a
// host that is an IP, a DNS name or (unless dialable) empty. A dialable
// address, one other nodes connect to, must name a specific host (not empty,
// 0.0.0.0 or ::). The error names the address and what is wrong with it.
func CheckAddr(s string, dialable bool) error {
	host, portText, err := net.SplitHostPort(s)
	if err != nil || !ValidHost(host) {
		return fmt.Errorf("%q is not host:port", s)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("%q has port %q; want a number from 1 to 65535", s, portText)
	}
	if dialable && !SpecificHost(host) {
		return fmt.Errorf("%q has no specific host for others to dial", s)
	}
	return nil
}

// ValidHost accepts an IP, a DNS name or "" (every interface); it rejects
// things like "http://x" that net.SplitHostPort lets through.
func ValidHost(h string) bool {
	if h == "" || net.ParseIP(h) != nil {
		return true
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// SpecificHost reports whether h names one host (not "" or a wildcard IP).
func SpecificHost(h string) bool {
	if h == "" {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsUnspecified()
}

// checkBroker refuses a registration or join whose id or addresses no node
// could have: every node has an id of 1 or more and dialable addresses.
func checkBroker(id int32, httpAddr, raftAddr string) error {
	if id < 1 {
		return fmt.Errorf("%w: node id %d must be 1 or more", ErrInvalidRequest, id)
	}
	if err := CheckAddr(httpAddr, true); err != nil {
		return fmt.Errorf("%w: http_addr: %w", ErrInvalidRequest, err)
	}
	if err := CheckAddr(raftAddr, true); err != nil {
		return fmt.Errorf("%w: raft_addr: %w", ErrInvalidRequest, err)
	}
	return nil
}
