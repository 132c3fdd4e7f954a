// Package fetch reads a partition for consumers: the read half of the
// protocol-neutral layer under the front ends (DESIGN §1). The REST API's
// partition consume, its follow stream and its group polls read through it,
// and so will the Kafka listener's Fetch; a front end only translates
// requests and replies.
//
// It sits below the front ends and above the storage: it imports logstore
// and the error catalog (errcode), nothing else of Weir's. A partition comes in as a Source (the leader
// replica, bounded by its high watermark, or a bare log with a bound of the
// caller's choosing); what makes a replica the leader, and where a request
// goes when this node is not, stays with the callers.
//
// What every reader gets alike:
//
//   - Records yields the records of a partition from an offset, below the
//     bound, within byte and record limits, going past ranges that hold no
//     records (compacted away) and on into the next segments. Decode does the
//     same over batches already read (another node's reply). Records below
//     the offset in the first batch (batches are atomic) are skipped; a
//     record is never yielded twice or left out.
//   - A batch that cannot be read or decoded (I/O error, CRC, framing,
//     compression) is a *StorageError at the offset where reading stopped:
//     the records before it come, nothing at or after it, and the reader
//     reports the error. No reader steps over a batch it cannot decode.
//   - Batches and Fetch hand out stored batches unchanged, for readers that
//     decode them elsewhere (a node reading for a request it serves, a Kafka
//     client); Fetch reads many partitions at once and long-polls until one
//     has data, as Kafka's Fetch does.
//
// Records and Decode allocate nothing per record: records are passed by
// value, keys and values alias the read buffer.
package fetch
