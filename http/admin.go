package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"weir/client"
)

func (s *Server) getCluster(c echo.Context) error {
	cl, err := s.b.Cluster(c.Request().Context())
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, cl)
}

func (s *Server) getBrokers(c echo.Context) error {
	cl, err := s.b.Cluster(c.Request().Context())
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, client.BrokerList{Brokers: cl.Brokers})
}

func brokerID(c echo.Context) (int32, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 32)
	if err != nil || id < 0 {
		return 0, badRequest("broker id %s must be a non-negative integer", quoteInput(c.Param("id")))
	}
	return int32(id), nil
}

func (s *Server) getBroker(c echo.Context) error {
	id, err := brokerID(c)
	if err != nil {
		return err
	}
	cl, err := s.b.Cluster(c.Request().Context())
	if err != nil {
		return err
	}
	for _, b := range cl.Brokers {
		if b.ID == id {
			return writeJSON(c, http.StatusOK, b)
		}
	}
	return Errorf(client.CodeBrokerNotAvailable, "broker %d is not part of the cluster", id)
}

func (s *Server) deleteBroker(c echo.Context) error {
	id, err := brokerID(c)
	if err != nil {
		return err
	}
	if err := s.b.DeleteBroker(c.Request().Context(), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) getHealth(c echo.Context) error {
	h, err := s.b.Health(c.Request().Context())
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !h.Healthy {
		status = http.StatusServiceUnavailable
	}
	return writeJSON(c, status, h)
}

// boolQuery parses an optional boolean query parameter.
func boolQuery(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %s=%s must be true or false", name, quoteInput(v))
	}
	return b, nil
}

func (s *Server) listTopics(c echo.Context) error {
	internal, err := boolQuery(c, "internal")
	if err != nil {
		return err
	}
	list, err := s.b.ListTopics(c.Request().Context(), internal)
	if err != nil {
		return err
	}
	if list.Topics == nil {
		list.Topics = []client.TopicSummary{}
	}
	return writeJSON(c, http.StatusOK, list)
}

func (s *Server) createTopic(c echo.Context) error {
	req, err := readJSON[client.CreateTopicRequest](s, c)
	if err != nil {
		return err
	}
	if req.Name == "" {
		return Errorf(client.CodeInvalidTopic, "name: a topic name is required")
	}
	if req.Partitions != nil && (*req.Partitions < 1 || *req.Partitions > maxPartitions) {
		return Errorf(client.CodeInvalidPartitions, "partitions: must be between 1 and %d, got %d", maxPartitions, *req.Partitions)
	}
	if req.ReplicationFactor != nil && (*req.ReplicationFactor < 1 || *req.ReplicationFactor > 32767) {
		return Errorf(client.CodeInvalidReplicationFactor, "replication_factor: must be at least 1, got %d", *req.ReplicationFactor)
	}
	t, err := s.b.CreateTopic(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, t)
}

// maxPartitions bounds one topic's partition count (a typo of 1e9 would
// otherwise try to create a billion directories).
const maxPartitions = 10000

func (s *Server) getTopic(c echo.Context) error {
	t, err := s.b.Topic(c.Request().Context(), c.Param("topic"))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, t)
}

func (s *Server) alterTopic(c echo.Context) error {
	req, err := readJSON[client.AlterTopicRequest](s, c)
	if err != nil {
		return err
	}
	if req.Partitions == nil && req.Configs == nil {
		return badRequest("nothing to change: give partitions and/or configs")
	}
	if req.Partitions != nil && (*req.Partitions < 1 || *req.Partitions > maxPartitions) {
		return Errorf(client.CodeInvalidPartitions, "partitions: must be between 1 and %d, got %d", maxPartitions, *req.Partitions)
	}
	t, err := s.b.AlterTopic(c.Request().Context(), c.Param("topic"), req)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, t)
}

func (s *Server) deleteTopic(c echo.Context) error {
	if err := s.b.DeleteTopic(c.Request().Context(), c.Param("topic")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) topicOffsets(c echo.Context) error {
	var ts *int64
	if v := c.QueryParam("timestamp"); v != "" {
		t, err := strconv.ParseInt(v, 10, 64)
		if err != nil || t < 0 {
			return badRequest("query parameter timestamp=%s must be milliseconds since the epoch", quoteInput(v))
		}
		ts = &t
	}
	out, err := s.b.TopicOffsets(c.Request().Context(), c.Param("topic"), ts)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, out)
}
