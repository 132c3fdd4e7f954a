package server

import (
	"path/filepath"

	"weir/metadata"
	"weir/nodeauth"
)

// clusterKeys finds this node's cluster secret and derives its credentials:
// cluster_secret if set, else the data dir's cluster-secret file. A node that
// has neither and starts a cluster of its own (one voter, itself, no join)
// creates that file with a new random secret, so that `weir serve` alone
// just works; any other node must be given the cluster's secret. Call it
// with the data dir locked (open), so two processes cannot both create one,
// and before Raft opens (it needs the credentials).
func (n *Node) clusterKeys() (*nodeauth.Keys, error) {
	secret := n.cfg.ClusterSecret
	if secret == "" {
		path := filepath.Join(n.cfg.DataDir, nodeauth.SecretFile)
		var refused error // mayMakeSecret's answer: returned as it is
		s, created, err := nodeauth.LoadOrCreate(path, func() error {
			refused = n.mayMakeSecret(path)
			return refused
		})
		switch {
		case refused != nil:
			return nil, refused
		case err != nil:
			return nil, &KeyError{Key: "cluster_secret", Msg: err.Error(), Err: err}
		case created:
			n.logger.Info("generated a cluster secret; nodes that join this one need it (--cluster-secret or WEIR_CLUSTER_SECRET)", "file", path)
		}
		secret = s
	}
	return nodeauth.NewKeys(secret)
}

// mayMakeSecret says whether this node, which has no secret (path does not
// exist), may make one: only if it starts a cluster alone.
func (n *Node) mayMakeSecret(path string) error {
	if !n.startsAlone() {
		return keyErr("cluster_secret", "is not set and %s does not exist: the nodes of a cluster of several voters, and a node that joins one, "+
			"must share the cluster's secret; give every node the same one with --cluster-secret, %s or that file", path, EnvName("cluster_secret"))
	}
	// A node that joined a cluster once and now starts without join (or
	// voters) resolves to "alone" too: its Raft state tells.
	members, existing, err := metadata.StoredMembers(filepath.Join(n.cfg.DataDir, "raft"))
	if err != nil {
		return err
	}
	if existing && (len(members) != 1 || members[0].ID != n.cfg.NodeID) {
		return keyErr("cluster_secret", "is not set and %s does not exist: this node is one of %d members of a cluster, "+
			"which share its secret; give it with --cluster-secret, %s or that file", path, len(members), EnvName("cluster_secret"))
	}
	return nil
}

// startsAlone: this node is the only voter and joins no one.
func (n *Node) startsAlone() bool {
	return len(n.cfg.Join) == 0 && len(n.cfg.Voters) == 1 && n.cfg.Voters[0].ID == n.cfg.NodeID
}
