// Package nodeauth is the cluster secret that every node of a Weir cluster
// holds, and the credentials derived from it that nodes present to each
// other: a header on node-to-node HTTP calls (/internal/v1/... and forwarded
// requests) and a handshake on Raft connections.
//
// The raw secret never travels: each use gets its own token, an
// HMAC-SHA256 of a fixed label keyed with the secret, so a token seen on the
// wire does not reveal the secret, and a token of one use (say HTTP) is not
// the one another use (Raft) takes. Tokens are compared in constant time.
// They are static: without TLS, whoever can read the traffic between nodes
// can replay them. What they keep out is anyone who can merely reach the
// nodes' ports; mutual TLS is the answer to an untrusted network.
package nodeauth
