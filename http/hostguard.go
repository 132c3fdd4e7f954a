package httpapi

import (
	"net"
	"strings"

	"github.com/labstack/echo/v4"

	"weir/client"
)

// A node on a laptop listens on 127.0.0.1, and any web page the laptop's
// browser opens can send it requests. The browser's same-origin rule keeps
// that page from reading the replies, unless the attacker's own name
// resolves to 127.0.0.1 (DNS rebinding): the page is then same-origin with
// "its" server and may send and read anything, with Host naming the
// attacker's domain. Requests whose Host is a name this node does not
// answer to are therefore refused.

// HostPolicy says which Host headers a node answers.
type HostPolicy struct {
	// Any answers every Host: the node listens beyond loopback, where the
	// names it is reached by are not known (unless Names lists them).
	Any bool
	// Names are the host names (no port) answered besides IP literals,
	// "localhost" and *.localhost; matched case-insensitively.
	Names []string
}

// NewHostPolicy is the policy for a node listening on listenAddr and
// advertising advertiseAddr, with the configured names (http_allowed_hosts;
// "*" answers every Host). With none configured, a node listening on
// loopback only answers its advertised name and local names, and one
// listening beyond loopback answers every Host.
func NewHostPolicy(listenAddr, advertiseAddr string, configured []string) HostPolicy {
	var p HostPolicy
	for _, n := range configured {
		if n == "*" {
			p.Any = true
		}
		p.Names = append(p.Names, strings.ToLower(strings.TrimSpace(n)))
	}
	if host, _, err := net.SplitHostPort(advertiseAddr); err == nil {
		p.Names = append(p.Names, strings.ToLower(host))
	}
	if len(configured) == 0 && !loopbackOnly(listenAddr) {
		p.Any = true
	}
	return p
}

// loopbackOnly reports whether a listen address takes loopback traffic only.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// allows reports whether the policy answers a request's Host (with or
// without its port). An empty Host (HTTP/1.0) carries no name to rebind.
func (p HostPolicy) allows(hostport string) bool {
	if p.Any || hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if net.ParseIP(strings.Trim(host, "[]")) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, n := range p.Names {
		if n == host {
			return true
		}
	}
	return false
}

// hostGuard refuses a request whose Host this node does not answer.
func (s *Server) hostGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if host := c.Request().Host; !s.opts.Hosts.allows(host) {
			return Errorf(client.CodeMisdirectedRequest,
				"this node does not answer to the host name %s (a guard against DNS rebinding); list it in http_allowed_hosts, or reach the node by its IP address",
				quoteInput(host))
		}
		return next(c)
	}
}
