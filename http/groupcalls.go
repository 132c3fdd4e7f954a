package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"weir/client"
)

// The consumer group calls but the poll (poll.go): routes, names, and
// the bodies of join, heartbeat, seek, commit and reset, checked before the
// coordinator sees them.

// Consumer group input limits.
const (
	maxGroupIDBytes    = 255
	maxMemberIDBytes   = 1024 // "<group>-<host>-<ms>-<uuid>" with a long group and host
	maxClientIDBytes   = 255
	maxOffsetMetadata  = 4096 // Kafka's offset.metadata.max.bytes
	minSessionTimeout  = 1000
	maxSessionTimeout  = 30 * 60 * 1000
	maxTopicNameLength = 249
)

func (s *Server) groupRoutes(v1 *echo.Group) {
	getHead := []string{http.MethodGet, http.MethodHead} // the poll stays GET only: it moves positions
	v1.Match(getHead, "/groups", s.listGroups)
	v1.Match(getHead, "/groups/:group", s.describeGroup)
	v1.DELETE("/groups/:group", s.deleteGroup)
	v1.POST("/groups/:group/members", s.joinGroup)
	v1.POST("/groups/:group/members/:member/heartbeat", s.heartbeat)
	v1.GET("/groups/:group/members/:member/records", s.pollGroup)
	v1.POST("/groups/:group/members/:member/seek", s.seek)
	v1.DELETE("/groups/:group/members/:member", s.leaveGroup)
	v1.POST("/groups/:group/offsets", s.commitOffsets)
	v1.Match(getHead, "/groups/:group/offsets", s.groupOffsets)
	v1.POST("/groups/:group/offsets/reset", s.resetOffsets)
}

// checkName refuses an empty, overlong, non-UTF-8 or control-character id.
func checkName(field, v string, maxBytes int) error {
	switch {
	case v == "":
		return badRequest("%s: must not be empty", field)
	case len(v) > maxBytes:
		return badRequest("%s: is %d bytes long, the maximum is %d", field, len(v), maxBytes)
	case !utf8.ValidString(v):
		return badRequest("%s: must be valid UTF-8", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return badRequest("%s %s: must not contain control characters", field, quoteInput(v))
		}
	}
	return nil
}

// checkTopicName applies Kafka's topic name rules; field names the input.
func checkTopicName(field, name string) error {
	switch {
	case name == "":
		return badRequest("%s: a topic name is required", field)
	case name == "." || name == "..":
		return badRequest("%s: a topic name cannot be %q", field, name)
	case len(name) > maxTopicNameLength:
		return badRequest("%s: a topic name is at most %d characters, got %d", field, maxTopicNameLength, len(name))
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return badRequest("%s: topic name %s contains %q; allowed are ASCII letters, digits, '.', '_' and '-'", field, quoteInput(name), c)
		}
	}
	return nil
}

func groupParam(c echo.Context) (string, error) {
	g := c.Param("group")
	return g, checkName("group", g, maxGroupIDBytes)
}

func memberParams(c echo.Context) (group, member string, err error) {
	if group, err = groupParam(c); err != nil {
		return "", "", err
	}
	member = c.Param("member")
	return group, member, checkName("member", member, maxMemberIDBytes)
}

// readEmptyBody accepts no body or an empty JSON object, for calls that take
// no input; the body is kept for forwarding like any other.
func (s *Server) readEmptyBody(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	var none struct{}
	return s.shapes.decodeStrict(body, &none)
}

func (s *Server) listGroups(c echo.Context) error {
	list, err := s.opts.Groups.ListGroups(c.Request().Context())
	if err != nil {
		return err
	}
	if list.Groups == nil {
		list.Groups = []client.GroupSummary{}
	}
	return writeJSON(c, http.StatusOK, list)
}

func (s *Server) describeGroup(c echo.Context) error {
	g, err := groupParam(c)
	if err != nil {
		return err
	}
	out, err := s.opts.Groups.DescribeGroup(c.Request().Context(), g)
	if err != nil {
		return err
	}
	if out.Members == nil {
		out.Members = []client.GroupMember{}
	}
	for i := range out.Members {
		m := &out.Members[i]
		if m.Topics == nil {
			m.Topics = []string{}
		}
		if m.Assignments == nil {
			m.Assignments = []client.TopicPartition{}
		}
	}
	if out.Offsets == nil {
		out.Offsets = []client.GroupOffset{}
	}
	return writeJSON(c, http.StatusOK, out)
}

func (s *Server) deleteGroup(c echo.Context) error {
	g, err := groupParam(c)
	if err != nil {
		return err
	}
	if err := s.opts.Groups.DeleteGroup(c.Request().Context(), g); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func validateJoin(req *client.JoinGroupRequest) error {
	if req.MemberID != "" {
		if err := checkName("member_id", req.MemberID, maxMemberIDBytes); err != nil {
			return err
		}
	}
	if len(req.Topics) == 0 {
		return badRequest("topics: give at least one topic to subscribe to")
	}
	for i, t := range req.Topics {
		if err := checkTopicName(fmt.Sprintf("topics[%d]", i), t); err != nil {
			return err
		}
	}
	if req.ClientID != "" {
		if err := checkName("client_id", req.ClientID, maxClientIDBytes); err != nil {
			return err
		}
	}
	if t := req.SessionTimeoutMS; t != nil && (*t < minSessionTimeout || *t > maxSessionTimeout) {
		return badRequest("session_timeout_ms: must be between %d and %d, got %d", minSessionTimeout, maxSessionTimeout, *t)
	}
	switch req.AutoOffsetReset {
	case "", client.ResetToEarliest, client.ResetToLatest:
	default:
		return badRequest("auto_offset_reset: must be earliest or latest, got %s", quoteInput(req.AutoOffsetReset))
	}
	switch req.Assignor {
	case "", "range", "roundrobin", "sticky":
	default:
		return badRequest("assignor: must be range, roundrobin or sticky, got %s", quoteInput(req.Assignor))
	}
	return nil
}

func (s *Server) joinGroup(c echo.Context) error {
	g, err := groupParam(c)
	if err != nil {
		return err
	}
	req, err := readJSON[client.JoinGroupRequest](s, c)
	if err != nil {
		return err
	}
	if err := validateJoin(&req); err != nil {
		return err
	}
	out, err := s.opts.Groups.JoinGroup(c.Request().Context(), g, req, clientAddr(c))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, nonNilAssignment(out))
}

func nonNilAssignment(a client.MemberAssignment) client.MemberAssignment {
	if a.Assignments == nil {
		a.Assignments = []client.TopicPartition{}
	}
	return a
}

func (s *Server) heartbeat(c echo.Context) error {
	g, m, err := memberParams(c)
	if err != nil {
		return err
	}
	if err := s.readEmptyBody(c); err != nil {
		return err
	}
	out, err := s.opts.Groups.Heartbeat(c.Request().Context(), g, m)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, nonNilAssignment(out))
}

func (s *Server) leaveGroup(c echo.Context) error {
	g, m, err := memberParams(c)
	if err != nil {
		return err
	}
	if err := s.opts.Groups.LeaveGroup(c.Request().Context(), g, m); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func validateSeek(req *client.SeekRequest) error {
	given := 0
	for _, set := range []bool{req.Offset != nil, req.Timestamp != nil, req.To != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return badRequest("give exactly one of offset, timestamp and to (got %d)", given)
	}
	if req.Topic != "" {
		if err := checkTopicName("topic", req.Topic); err != nil {
			return err
		}
	}
	if req.Partition != nil {
		if req.Topic == "" {
			return badRequest("partition: needs topic")
		}
		if *req.Partition < 0 {
			return badRequest("partition: must not be negative, got %d", *req.Partition)
		}
	}
	switch {
	case req.Offset != nil && *req.Offset < 0:
		return badRequest("offset: must not be negative, got %d", *req.Offset)
	case req.Timestamp != nil && *req.Timestamp < 0:
		return badRequest("timestamp: must be milliseconds since the epoch, got %d", *req.Timestamp)
	case req.To != "" && req.To != client.ResetToEarliest && req.To != client.ResetToLatest:
		return badRequest("to: must be earliest or latest, got %s", quoteInput(req.To))
	}
	return nil
}

func (s *Server) seek(c echo.Context) error {
	g, m, err := memberParams(c)
	if err != nil {
		return err
	}
	req, err := readJSON[client.SeekRequest](s, c)
	if err != nil {
		return err
	}
	if err := validateSeek(&req); err != nil {
		return err
	}
	out, err := s.opts.Groups.Seek(c.Request().Context(), g, m, req)
	if err != nil {
		return err
	}
	if out.Positions == nil {
		out.Positions = []client.GroupPosition{}
	}
	return writeJSON(c, http.StatusOK, out)
}

func validateCommit(req *client.CommitRequest) error {
	if len(req.Offsets) == 0 {
		return badRequest("offsets: give at least one offset to commit")
	}
	seen := make(map[client.TopicPartition]int, len(req.Offsets))
	for i, o := range req.Offsets {
		field := fmt.Sprintf("offsets[%d]", i)
		if err := checkTopicName(field+".topic", o.Topic); err != nil {
			return err
		}
		switch {
		case o.Partition < 0:
			return badRequest("%s.partition: must not be negative, got %d", field, o.Partition)
		case o.Offset < 0:
			return badRequest("%s.offset: must not be negative, got %d", field, o.Offset)
		case len(o.Metadata) > maxOffsetMetadata:
			return badRequest("%s.metadata: is %d bytes long, the maximum is %d", field, len(o.Metadata), maxOffsetMetadata)
		}
		tp := client.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		if j, dup := seen[tp]; dup {
			return badRequest("%s: %s-%d is already in offsets[%d]", field, o.Topic, o.Partition, j)
		}
		seen[tp] = i
	}
	switch {
	case req.MemberID != "" && req.Generation == nil:
		return badRequest("generation: required with member_id")
	case req.MemberID == "" && req.Generation != nil:
		return badRequest("member_id: required with generation")
	case req.Generation != nil && *req.Generation < 0:
		return badRequest("generation: must not be negative, got %d", *req.Generation)
	case req.MemberID != "":
		return checkName("member_id", req.MemberID, maxMemberIDBytes)
	}
	return nil
}

func (s *Server) commitOffsets(c echo.Context) error {
	g, err := groupParam(c)
	if err != nil {
		return err
	}
	req, err := readJSON[client.CommitRequest](s, c)
	if err != nil {
		return err
	}
	if err := validateCommit(&req); err != nil {
		return err
	}
	if err := s.checkPartitionsExist(req.Offsets); err != nil {
		return err
	}
	out, err := s.opts.Groups.CommitOffsets(c.Request().Context(), g, req)
	if err != nil {
		return err
	}
	if out.Offsets == nil {
		out.Offsets = []client.CommitOffset{}
	}
	return writeJSON(c, http.StatusOK, out)
}

// checkPartitionsExist refuses a commit for a topic or partition this node
// does not know: an offset stored for it would be reported, and lag
// computed, for something that does not exist.
func (s *Server) checkPartitionsExist(offsets []client.CommitOffset) error {
	for i, o := range offsets {
		info, err := s.b.TopicInfo(o.Topic)
		if err != nil {
			return err
		}
		if int(o.Partition) >= info.Partitions {
			return Errorf(client.CodeUnknownTopicOrPartition, "offsets[%d].partition: topic %q has no partition %d (it has %d)",
				i, o.Topic, o.Partition, info.Partitions)
		}
	}
	return nil
}

func (s *Server) groupOffsets(c echo.Context) error {
	g, err := groupParam(c)
	if err != nil {
		return err
	}
	out, err := s.opts.Groups.GroupOffsets(c.Request().Context(), g)
	if err != nil {
		return err
	}
	if out.Offsets == nil {
		out.Offsets = []client.GroupOffset{}
	}
	return writeJSON(c, http.StatusOK, out)
}

func validateReset(req *client.ResetOffsetsRequest) error {
	if err := checkTopicName("topic", req.Topic); err != nil {
		return err
	}
	seen := make(map[int32]bool, len(req.Partitions))
	for i, p := range req.Partitions {
		if p < 0 {
			return badRequest("partitions[%d]: must not be negative, got %d", i, p)
		}
		if seen[p] {
			return badRequest("partitions[%d]: partition %d is listed twice", i, p)
		}
		seen[p] = true
	}
	switch req.To {
	case client.ResetToEarliest, client.ResetToLatest:
		if req.Value != nil {
			return badRequest("value: not used with to=%s", req.To)
		}
	case client.ResetToOffset, client.ResetToTimestamp, client.ResetShift:
		if req.Value == nil {
			return badRequest("value: required with to=%s", req.To)
		}
		if req.To != client.ResetShift && *req.Value < 0 {
			return badRequest("value: must not be negative with to=%s, got %d", req.To, *req.Value)
		}
	case "":
		return badRequest("to: required, one of earliest, latest, offset, timestamp and shift")
	default:
		return badRequest("to: must be earliest, latest, offset, timestamp or shift, got %s", quoteInput(req.To))
	}
	return nil
}

func (s *Server) resetOffsets(c echo.Context) error {
	g, err := groupParam(c)
	if err != nil {
		return err
	}
	req, err := readJSON[client.ResetOffsetsRequest](s, c)
	if err != nil {
		return err
	}
	if err := validateReset(&req); err != nil {
		return err
	}
	if req.DryRun == nil { // a reset changes nothing unless asked to explicitly
		dry := true
		req.DryRun = &dry
	}
	out, err := s.opts.Groups.ResetOffsets(c.Request().Context(), g, req)
	if err != nil {
		return err
	}
	if out.Offsets == nil {
		out.Offsets = []client.ResetOffsetRow{}
	}
	return writeJSON(c, http.StatusOK, out)
}
