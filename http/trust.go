package httpapi

import (
	"net"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/nodeauth"
)

// Who sent a request: another node of the cluster, which presents the
// cluster credential (nodeauth.Header), or a client. Only nodes reach
// /internal/v1, and only nodes' forwarding headers (Weir-Forwarded-By,
// Weir-Client-Addr, Weir-Forward-Timeout-Ms) count: a client's are dropped,
// so they change nothing.
// A client's address is the connection's peer, or with trusted proxies the
// nearest untrusted address of X-Forwarded-For.

const fromNodeKey = "weir.from_node"

// nodeHeaders marks requests from nodes, refuses a wrong credential (a node
// of another cluster, or a guess) and strips the forwarding headers of
// everything else.
func (s *Server) nodeHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		presented := h.Get(nodeauth.Header)
		switch {
		case presented == "":
			h.Del(ForwardedHeader)
			h.Del(ClientAddrHeader)
			h.Del(ForwardTimeoutHeader)
		case s.opts.Cluster == nil || !s.opts.Cluster.ValidHTTP(presented):
			s.refusals.Refused(c.Request().RemoteAddr, "wrong cluster credential")
			return Errorf(client.CodeClusterAuthorizationFailed,
				"the %s header does not carry this cluster's credential (is cluster_secret the same on every node?)", nodeauth.Header)
		default:
			c.Set(fromNodeKey, true)
		}
		return next(c)
	}
}

// requireNode guards the node-to-node routes.
func (s *Server) requireNode(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if fromNode, _ := c.Get(fromNodeKey).(bool); !fromNode {
			s.refusals.Refused(c.Request().RemoteAddr, "no cluster credential")
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, nodeauth.Header)
			return Errorf(client.CodeNodeAuthenticationRequired,
				"/internal/v1 is for the nodes of the cluster, which present its credential (%s)", nodeauth.Header)
		}
		return next(c)
	}
}

// ipExtractor finds a client's address: the direct peer, unless it is one
// of the trusted proxies (echo's own default would believe any
// X-Forwarded-For from a private network).
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
