// Package faults is a Jepsen-style test harness for Weir: it runs a real
// cluster of `weir serve` processes, drives it with recorded client
// operations while injecting faults, and checks the invariants of DESIGN.md
// §7 over the whole history.
//
// # Pieces
//
//   - history.go: the history — every client operation with its invoke and
//     complete times and its outcome (ok, fail, or unknown when the request
//     may have taken effect), the fault windows, and the final state read
//     after healing (the final full read and each replica's log on disk).
//     Operations of consumer groups (join, heartbeat, poll, commit, leave,
//     reads of the committed offsets) carry member id, generation and
//     assignments as the reply named them, and a poll its ack and poll_id.
//   - checker.go: Check turns a history into anomalies (lost acknowledged
//     write, duplicate, one offset with two values, skipping or backwards
//     poll, read of a failed write, read above the HW, replicas that differ
//     below the HW, two owners of a partition in one generation, committed
//     offsets going backwards — across coordinator failovers too —, a stale
//     generation's commit, an acknowledged write no member of a group
//     received, ...), each naming the operations involved. A member's polls
//     must continue where the last reply it received left off, also across
//     replies lost on the way: the ack protocol serves those again.
//   - net.go, net_netns.go, net_proxy.go: the network the cluster runs on. As root
//     with `ip`, every node gets its own network namespace behind a bridge in
//     a hub namespace, and links are cut with blackhole routes; the test
//     process reaches the nodes from threads that entered a client namespace,
//     so the host's interfaces and routes are never touched. Otherwise a
//     fault-injecting TCP proxy sits in front of every node's HTTP and Raft
//     port on 127.0.0.1 and tells the sending node of each connection from
//     /proc. WEIR_FAULTS_MODE=netns|proxy forces one.
//   - cluster.go: the weir processes (built once per test run), their data
//     dirs (a small tmpfs each where mounting is possible, so that a disk can
//     be filled), readiness, kill -9, SIGSTOP/SIGCONT, clean stop.
//   - workload.go: the Workload interface; producers (acks=all and acks=1)
//     writing unique values and assigned consumers reading each partition in
//     order, plus a metadata observer.
//   - groupload.go: consumer groups on every topic, one auto-committing and
//     one committing explicitly, three members each: they join, poll
//     (acknowledging each reply received; one reply in 30 is dropped as if
//     lost on the way), heartbeat, commit, leave and re-join (now and then
//     right after a lost reply), re-join when the coordinator forgot them
//     (failover, expiry), each from its own node order with failover; a
//     reader records the committed offsets. After healing, the members
//     poll until they together have every record (the drain), so that
//     every acknowledged write must have reached the group.
//   - nemesis.go: the faults — kill -9 (a random node, a partition leader,
//     the controller, a consumer group's coordinator, found with GET
//     /v1/groups/{g}), SIGSTOP past the session timeout, partitions (leader
//     from followers, leader from controller, minority from majority, ring
//     or bridge, clients from a leader), a restart with a torn segment tail,
//     a full disk — with targets from a seeded random source. Clock skew is
//     not injected (see clockSkewUnsupported).
//   - run.go: one phase of a run — start, load, faults (each healed), heal
//     all, settle, drain the groups, final read, clean stop, replica
//     comparison, check — and its summary table (with a line per group:
//     calls, generations, records, committed offsets against the final HW),
//     where what did not succeed is counted by why, per operation and per
//     group call: the error code answered, or the transport error's kind
//     (errkind.go).
//
// # Running
//
// `go test ./faults/` runs the smoke profile (about three minutes on two
// cores): every fault kind once on three nodes (namespaces where possible)
// followed by random faults back to back, then a short five-node phase on
// the proxy (kill-coordinator among its faults); both phases, and the long
// profile, run the consumer groups beside the producers and consumers. The long profile runs random faults for a given time, half on
// three nodes and half on five:
//
//	WEIR_FAULTS_PROFILE=long WEIR_FAULTS_DURATION=30m go test -timeout 0 -run TestFaults ./faults/
//
// WEIR_FAULTS_SEED reruns a seed; WEIR_FAULTS_KEEP=1 keeps the run
// directory (node logs, history.json) even when the run passes; it is always
// kept when it fails. WEIR_FAULTS_RACE=1 builds weir with the race detector.
package faults
