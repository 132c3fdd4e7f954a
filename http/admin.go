package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"weir/client"
)

// readBody reads the request body up to the configured limit.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > s.opts.MaxRequestBytes {
		return nil, Errorf(client.CodeRecordListTooLarge, "the request body is larger than max_request_bytes (%d)", s.opts.MaxRequestBytes)
	}
	var buf bytes.Buffer
	if req.ContentLength > 0 { // one allocation of the right size, not ReadAll's doubling
		buf.Grow(int(req.ContentLength) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(req.Body, s.opts.MaxRequestBytes+1)); err != nil {
		return nil, badRequest("reading the request body: %v", err)
	}
	body := buf.Bytes()
	c.Set(bodyKey, body) // kept for forwarding to the owner
	if int64(len(body)) > s.opts.MaxRequestBytes {
		return nil, Errorf(client.CodeRecordListTooLarge, "the request body is larger than max_request_bytes (%d)", s.opts.MaxRequestBytes)
	}
	return body, nil
}

// readJSON reads the request body (kept for forwarding) and decodes it
// strictly into a T.
func readJSON[T any](s *Server, c echo.Context) (T, error) {
	var req T
	body, err := s.readBody(c)
	if err != nil {
		return req, err
	}
	return req, decodeStrict(body, &req)
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data, with messages that name the field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("unexpected data after the JSON object")
	}
	return nil
}

// jsonError words a decoding error so that it names the field.
func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return badRequest("field %q: expected %s, got JSON %s", field, te.Type.String(), te.Value)
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends early")
	}
	return badRequest("malformed JSON: %v", err)
}

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
		return 0, badRequest("broker id %q must be a non-negative integer", c.Param("id"))
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
		return false, badRequest("query parameter %s=%q must be true or false", name, v)
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
			return badRequest("query parameter timestamp=%q must be milliseconds since the epoch", v)
		}
		ts = &t
	}
	out, err := s.b.TopicOffsets(c.Request().Context(), c.Param("topic"), ts)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, out)
}
