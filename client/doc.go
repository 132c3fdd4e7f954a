// Package client is the Go client of Weir's REST API (see API.md): the CLI,
// the benchmarks and the tests use it. It imports nothing else of Weir; its
// wire types (api.go) are the ones the server encodes.
//
// A Client is made with New from a list of servers, tried in order: a call
// moves to the next server when it cannot connect (any node serves any call,
// forwarding it to the owner), never on an HTTP error reply. Error replies
// come back as *APIError, whose Code is one of the Code* constants (see
// IsCode). Calls are retried, a bounded number of times with backoff, only
// where the API promises that a retry cannot write anything twice; see
// Client. Every call takes a context, which bounds its time.
//
// Each reply names the node that served it (header Weir-Served-By): see
// WithResponseHook, CaptureMeta and APIError.ServedBy.
//
// The methods follow API.md's sections: cluster.go (Cluster, Brokers,
// Health, Livez, ...), topics.go (ListTopics, CreateTopic, AlterTopic,
// TopicOffsets, ...) and records.go (Produce, ProduceRaw, Consume, Follow).
// bench.go is the load generator behind `weir bench` (BenchProduce,
// BenchConsume), and echo.go the bare net/http handler it is compared with.
package client
