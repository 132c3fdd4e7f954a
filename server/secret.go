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
	path := filepath.Join(n.cfg.DataDir, nodeauth.SecretFile)
	secret := n.cfg.ClusterSecret
	if secret == "" {
		s, ok, err := nodeauth.ReadFile(path)
		switch {
		case err != nil:
			return nil, &KeyError{Key: "cluster_secret", Msg: err.Error(), Err: err}
		case ok:
			secret = s
		case n.startsAlone():
			// A node that joined a cluster once and now starts without join
			// (or voters) resolves to "alone" too: its Raft state tells.
			members, existing, err := metadata.StoredMembers(filepath.Join(n.cfg.DataDir, "raft"))
			if err != nil {
				return nil, err
			}
			if existing && (len(members) != 1 || members[0].ID != n.cfg.NodeID) {
				return nil, keyErr("cluster_secret", "is not set and %s does not exist: this node is one of %d members of a cluster, "+
					"which share its secret; give it with --cluster-secret, %s or that file", path, len(members), EnvName("cluster_secret"))
			}
			if secret, err = nodeauth.Generate(); err != nil {
				return nil, err
			}
			if err := nodeauth.CreateFile(path, secret); err != nil {
				return nil, err
			}
			n.logger.Info("generated a cluster secret; nodes that join this one need it (--cluster-secret or WEIR_CLUSTER_SECRET)", "file", path)
		default:
			return nil, keyErr("cluster_secret", "is not set and %s does not exist: the nodes of a cluster of several voters, and a node that joins one, "+
				"must share the cluster's secret; give every node the same one with --cluster-secret, %s or that file", path, EnvName("cluster_secret"))
		}
	}
	return nodeauth.NewKeys(secret)
}

// startsAlone: this node is the only voter and joins no one.
func (n *Node) startsAlone() bool {
	return len(n.cfg.Join) == 0 && len(n.cfg.Voters) == 1 && n.cfg.Voters[0].ID == n.cfg.NodeID
}
