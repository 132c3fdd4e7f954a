// Package replication is the replica manager: it holds this node's partition
// replicas, appends for the leader with the acks the producer asked for,
// advances the high watermark (HW) and wakes readers waiting for it.
//
// HW is the first offset not yet committed; readers get only offsets below it.
// A leader's own log end counts toward the HW only once it is durable (with
// fsync always), so nothing a crash could lose is ever served. With one
// replica in the ISR the HW is the leader's durable log end; the follower side
// (fetchers, ISR tracking, epoch truncation) lives here as well.
package replication
