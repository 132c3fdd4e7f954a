package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/replication"
)

// Node-to-node calls, under /internal/v1. They carry Weir's own metadata and
// are not part of the public contract.

// RegisterRequest registers a broker (or re-registers it after a restart).
type RegisterRequest struct {
	ID       int32  `json:"id"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	Rack     string `json:"rack,omitempty"`
	// Incarnation is new with every start of the process.
	Incarnation string `json:"incarnation,omitempty"`
}

// RegisterResponse is the broker as the controller registered it.
type RegisterResponse struct {
	Epoch int64  `json:"broker_epoch"`
	State string `json:"state"`
}

// HeartbeatRequest tells the controller a broker is alive and how far it applied the metadata.
type HeartbeatRequest struct {
	ID           int32  `json:"id"`
	Epoch        int64  `json:"broker_epoch"`
	AppliedIndex uint64 `json:"applied_index"`
	// ReplicasIndex is the metadata version this broker's replicas reflect
	// (AppliedIndex may be ahead of it for a moment): a partition created at
	// or before it is open here.
	ReplicasIndex uint64 `json:"replicas_index,omitempty"`
	// ShuttingDown keeps the controller from unfencing a broker on its way out.
	ShuttingDown bool `json:"shutting_down,omitempty"`
	// OfflinePartitions are the broker's replicas whose logs went offline
	// (a failed fsync or rename): the controller moves their leadership and
	// ISR membership away until the broker restarts.
	OfflinePartitions []client.TopicPartition `json:"offline_partitions,omitempty"`
}

// HeartbeatResponse carries the controller's metadata position: a broker
// has caught up once it applied that far.
type HeartbeatResponse struct {
	MetadataIndex uint64 `json:"metadata_index"`
	State         string `json:"state"`
}

// JoinRequest adds a node to the Raft group as a non-voter and registers it;
// it carries what a registration does.
type JoinRequest = RegisterRequest

// AlterPartitionRequest is a partition leader's ISR change (the replica
// manager's own request, as it travels).
type AlterPartitionRequest = replication.AlterPartitionRequest

// AlterPartitionResponse is the partition after the change.
type AlterPartitionResponse struct {
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	ISR            []int32 `json:"isr"`
}

// ShutdownRequest asks the controller to move a broker's leaderships away before it stops.
type ShutdownRequest struct {
	ID    int32 `json:"id"`
	Epoch int64 `json:"broker_epoch"`
}

// ShutdownResponse says how many partitions the broker still leads.
type ShutdownResponse struct {
	RemainingLeaders int `json:"remaining_leaders"`
}

// Internal is the node-to-node side of a node. Calls that need the
// controller return a *NotHereError elsewhere and are forwarded.
type Internal interface {
	Register(ctx context.Context, req RegisterRequest) (RegisterResponse, error)
	Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResponse, error)
	Join(ctx context.Context, req JoinRequest) (RegisterResponse, error)
	AlterPartition(ctx context.Context, req AlterPartitionRequest) (AlterPartitionResponse, error)
	ControlledShutdown(ctx context.Context, req ShutdownRequest) (ShutdownResponse, error)
	// LocalPartitionOffsets reports the partitions of topic this node leads.
	LocalPartitionOffsets(ctx context.Context, topic string, timestamp *int64) ([]client.PartitionOffsets, error)
	// Fetch serves a follower's fetch; it writes its binary reply itself.
	ServeFetch(w http.ResponseWriter, r *http.Request)
	// LocalGroups lists the groups this node coordinates.
	LocalGroups(ctx context.Context) ([]client.GroupSummary, error)
	// CreateOffsetsTopic creates __consumer_offsets on the controller (a no-op if it exists).
	CreateOffsetsTopic(ctx context.Context, req OffsetsTopicRequest) (OffsetsTopicResponse, error)
}

// OffsetsTopicRequest asks the controller to create the offsets topic.
type OffsetsTopicRequest struct{}

// OffsetsTopicResponse says the offsets topic exists, with its partition count.
type OffsetsTopicResponse struct {
	Partitions int `json:"partitions"`
}

func (s *Server) internalRoutes() {
	g := s.e.Group("/internal/v1", s.requireNode)
	// Reads for requests other nodes serve need only the partitions.
	g.POST("/read", s.serveRead)
	in := s.opts.Internal
	if in == nil {
		return
	}
	g.POST("/brokers/register", jsonCall(s, in.Register))
	g.POST("/brokers/heartbeat", jsonCall(s, in.Heartbeat))
	g.POST("/brokers/shutdown", jsonCall(s, in.ControlledShutdown))
	g.POST("/join", jsonCall(s, in.Join))
	g.POST("/alter-partition", jsonCall(s, in.AlterPartition))
	g.POST("/fetch", echo.WrapHandler(http.HandlerFunc(in.ServeFetch)))
	g.POST("/offsets-topic", jsonCall(s, in.CreateOffsetsTopic))
	g.GET("/groups", func(c echo.Context) error {
		rows, err := in.LocalGroups(c.Request().Context())
		if err != nil {
			return err
		}
		return writeJSON(c, http.StatusOK, rows)
	})
	g.GET("/topics/:topic/offsets", func(c echo.Context) error {
		var ts *int64
		if v := c.QueryParam("timestamp"); v != "" {
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return badRequest("timestamp=%s is not a number", quoteInput(v))
			}
			ts = &t
		}
		rows, err := in.LocalPartitionOffsets(c.Request().Context(), c.Param("topic"), ts)
		if err != nil {
			return err
		}
		return writeJSON(c, http.StatusOK, rows)
	})
}

// jsonCall adapts a typed node-to-node call to an echo handler.
func jsonCall[Req, Resp any](s *Server, fn func(context.Context, Req) (Resp, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		req, err := readJSON[Req](s, c)
		if err != nil {
			return err
		}
		resp, err := fn(c.Request().Context(), req)
		if err != nil {
			return err
		}
		return writeJSON(c, http.StatusOK, resp)
	}
}
