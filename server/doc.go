// Package server is one Weir node: it turns a Config into running parts and
// wires them together — the partition logs (logstore), the metadata Raft
// member and its controller duties (metadata), the replica manager
// (replication), the group coordinator (groups) and the REST API (http) —
// and it is the one place that knows all of them. The packages below talk to
// it through small interfaces (httpapi.Backend, httpapi.Internal,
// replication.Transport, groups.Env), never to each other.
//
// # Files
//
//	node.go        Node: open the stores, start the loops, stop cleanly; metadata -> replicas
//	httpserver.go  the API's http.Server: read, write and idle timeouts, the idle-connection cap
//	secret.go      the cluster secret: from config or the data dir, made on a lone first start
//	config*.go     Config, its validation, and loading from flags, WEIR_* and YAML
//	cluster.go     node-to-node calls: registration, heartbeats, join, ISR changes, controlled shutdown
//	controller.go  the controller's decisions (fence, unfence, preferred leaders) as pure functions
//	offline.go     partitions whose logs went offline: reported by heartbeat, given up via the controller
//	backend.go     the REST API's view of the node: topics, partitions, offsets, health
//	groups.go      the group coordinator's environment: the offsets topic, routing to coordinators
//	replwire.go    follower fetches over HTTP; leader-side ISR checks and HW checkpoints
//	collector.go   Prometheus metrics read from the parts at scrape time
//
// # The controller
//
// The node that leads Raft is the controller. Its soft state (when each
// broker last heartbeat, how far it applied the metadata and which metadata
// version its replicas reflect, whether it is stopping, which of its
// replicas are offline) lives in memory only and is rebuilt on every election, which
// gives every broker a full session timeout of grace. Every decision it takes
// on that state is a Raft command the state machine checks against the
// epochs it was decided on, so a deposed controller's late decision is
// refused rather than applied.
//
// # Invariants kept here
//
//   - A node applies the metadata to its replicas only once it is
//     registered as this process (its incarnation), unfenced, and has
//     applied the metadata up to what the controller had when it last
//     answered a heartbeat: acting on an older image could delete logs of
//     topics it does not show yet, or lead a partition whose log lost a
//     torn tail.
//   - An admin write is answered once the alive brokers applied it (bounded
//     by a session timeout), so a produce right after a create finds the
//     topic on any node.
//   - A stopping node first moves its leaderships away (controlled
//     shutdown), then stops serving, then closes replicas, logs and Raft.
package server
