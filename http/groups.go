package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/logstore"
)

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

// Group poll timing.
const (
	// pollFetchGrace is how long fetches already in flight may still finish
	// once another partition has answered with records: without it a
	// partition led elsewhere would lose every race to a local one.
	pollFetchGrace = 250 * time.Millisecond
	// pollRemoteSlack is how far past wait_ms a read from another node may
	// run (its network round trip), at most.
	pollRemoteSlack = time.Second
	// minPartitionBytes is the least a poll reads of each partition when
	// max_bytes is shared among many.
	minPartitionBytes = 64 << 10
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
	return decodeStrict(body, &none)
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

// pollGroup serves GET /v1/groups/{g}/members/{m}/records: the records of
// the member's partitions from its positions, spread fairly among them.
func (s *Server) pollGroup(c echo.Context) error {
	g, m, err := memberParams(c)
	if err != nil {
		return err
	}
	limit, maxBytes, waitMS, enc, err := readQuery(c)
	if err != nil {
		return err
	}
	wait := time.Duration(waitMS) * time.Millisecond
	if c.Request().Header.Get(ForwardedHeader) != "" {
		// The forwarding node gives up after its request timeout (plus a
		// margin): answer before, with what there is.
		wait = min(wait, s.opts.RequestTimeout)
	}
	ack, err := intQuery(c, "ack", -1, 0, math.MaxInt64)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p, err := s.opts.Groups.PollStart(ctx, g, m, ack)
	if err != nil {
		return err
	}
	parts := s.fetchPositions(ctx, p, int(limit), int(maxBytes), wait)
	if ctx.Err() != nil {
		return nil // the client went away: its positions stay where they were
	}
	picks, taken := mergeFair(parts, int(limit), int(maxBytes), s.pollTurn.Add(1))
	next := make([]client.GroupPosition, 0, len(parts))
	for i := range parts {
		if off, moved := parts[i].nextPosition(taken[i]); moved {
			pos := parts[i].pos
			pos.Offset = off
			next = append(next, pos)
		}
	}
	pollID, err := s.opts.Groups.PollDone(ctx, g, m, p.Generation, next)
	if err != nil {
		return err
	}
	buf, counts := renderGroupRecords(p, m, pollID, parts, picks, enc)
	if s.metrics != nil {
		for topic, n := range counts {
			s.metrics.recordsOut(topic, n[0], n[1])
		}
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, buf)
}

// partFetch is one partition's share of a group poll.
type partFetch struct {
	pos  client.GroupPosition
	recs []logstore.Record // from pos.Offset on, in offset order
	// next follows recs and any empty (compacted) range read past; it is
	// pos.Offset when nothing was read.
	next int64
	// reset: the position fell out of the log; next is where the member's
	// auto_offset_reset puts it (the records come on the next poll).
	reset bool
	// err: the partition could not be read (no leader, leader unreachable).
	err error
}

// done reports whether the partition has something for the poll to answer.
func (f *partFetch) done() bool { return len(f.recs) > 0 || f.reset }

// nextPosition is where the position goes once the poll returned the first
// taken of the records read, and whether it moved.
func (f *partFetch) nextPosition(taken int) (int64, bool) {
	var off int64
	switch {
	case f.reset || taken == len(f.recs):
		off = f.next
	case taken > 0:
		off = f.recs[taken-1].Offset + 1
	default:
		off = f.pos.Offset
	}
	return off, off != f.pos.Offset
}

// pollWindow is the timing of one group poll, shared by its partitions' fetches.
type pollWindow struct {
	// fetch bounds a fetch without a wait: the request, cut short
	// pollFetchGrace after some partition answered with records.
	fetch context.Context
	// found ends once some partition answered with records (or the request ended).
	found context.Context
	// wait is found bounded by the deadline: the long-poll.
	wait     context.Context
	deadline time.Time
	waiting  bool
	policy   string // auto_offset_reset
	limit    int
	bytes    int // per partition
}

// fetchPositions reads every position of the poll concurrently. With a
// wait, partitions without records wait for some (local ones on their high
// watermark, remote ones on their leader's long-poll) until the first
// records of any partition arrive or the wait is over.
func (s *Server) fetchPositions(ctx context.Context, p GroupPoll, limit, maxBytes int, wait time.Duration) []partFetch {
	deadline := time.Now().Add(wait)
	found, signal := context.WithCancel(ctx)
	defer signal()
	waitCtx, cancelWait := context.WithDeadline(found, deadline)
	defer cancelWait()
	fetchCtx, cutFetches := context.WithDeadline(ctx, deadline.Add(pollRemoteSlack))
	defer cutFetches()
	n := len(p.Positions)
	if n == 0 {
		if wait > 0 { // nothing assigned: wait anyway, so that a polling loop does not spin
			<-waitCtx.Done()
		}
		return nil
	}
	w := &pollWindow{fetch: fetchCtx, found: found, wait: waitCtx, deadline: deadline, waiting: wait > 0,
		policy: p.AutoOffsetReset, limit: limit, bytes: max(maxBytes/n, min(maxBytes, minPartitionBytes))}
	type result struct {
		i int
		f partFetch
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i, pos := range p.Positions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- result{i, s.pollPartition(w, pos)}
		}()
	}
	out := make([]partFetch, n)
	var grace *time.Timer
	var graceC <-chan time.Time
	for got := 0; got < n; {
		select {
		case r := <-results:
			out[r.i] = r.f
			got++
			if r.f.done() && grace == nil {
				signal()
				grace = time.NewTimer(pollFetchGrace)
				graceC = grace.C
			}
		case <-graceC:
			cutFetches()
			graceC = nil
		}
	}
	if grace != nil {
		grace.Stop()
	}
	wg.Wait()
	return out
}

// pollPartition reads one position, and with a wait, waits for records.
func (s *Server) pollPartition(w *pollWindow, pos client.GroupPosition) partFetch {
	f := partFetch{pos: pos, next: pos.Offset}
	local := s.fetchPartition(w.fetch, w, &f, 0)
	for w.waiting && !f.done() && w.wait.Err() == nil {
		switch {
		case f.err != nil:
			// No leader or none reachable: look again shortly.
			t := time.NewTimer(remotePollInterval)
			select {
			case <-w.wait.Done():
			case <-t.C:
			}
			t.Stop()
			if w.wait.Err() != nil {
				return f
			}
			f.err = nil
			local = s.fetchPartition(w.fetch, w, &f, 0)
		case local != nil:
			if local.WaitHW(w.wait, f.next) != nil {
				return f
			}
			local = s.fetchPartition(w.fetch, w, &f, 0)
		default:
			// Led elsewhere: the leader long-polls for us.
			left := time.Until(w.deadline)
			if left < time.Millisecond {
				return f
			}
			waitMS := min(left, s.opts.RequestTimeout).Milliseconds()
			ctx, cancel := context.WithDeadline(w.found, w.deadline.Add(pollRemoteSlack))
			local = s.fetchPartition(ctx, w, &f, waitMS)
			cancel()
			if f.err != nil && w.found.Err() != nil {
				f.err = nil // cut short because another partition answered
			}
		}
	}
	return f
}

// fetchPartition reads f's partition from f.next: from the local replica
// when this node leads it (which it returns, for waiting on), else from its
// leader (waitMS > 0 long-polls there). An out-of-range position is reset
// per the member's policy; any other failure is left in f.err.
func (s *Server) fetchPartition(ctx context.Context, w *pollWindow, f *partFetch, waitMS int64) Partition {
	topic, pn := f.pos.Topic, f.pos.Partition
	p, err := s.b.Partition(topic, pn)
	var ne *NotHereError
	if errors.As(err, &ne) {
		recs, next, err := s.remoteRecords(ctx, ne, topic, pn, f.next, remoteQuery{limit: int64(w.limit), maxBytes: int64(w.bytes), waitMS: waitMS})
		var ae *Error
		switch {
		case errors.As(err, &ae) && ae.Code == client.CodeOffsetOutOfRange && ae.LogStartOffset != nil && ae.HighWatermark != nil:
			f.resetTo(w.policy, *ae.LogStartOffset, *ae.HighWatermark)
		case err != nil:
			f.err = err
		default:
			f.add(recs, next)
		}
		return nil
	}
	if err != nil {
		f.err = err
		return nil
	}
	recs, next, err := readLocal(p, f.next, w.limit, w.bytes)
	var oor *logstore.OutOfRangeError
	switch {
	case errors.As(err, &oor) && f.next >= oor.LogStartOffset && !s.b.MetadataCurrent():
		// Past this replica's end while its metadata may be stale: the real
		// leader may have more. Skip it this poll rather than move the position.
		f.err = fmt.Errorf("%s-%d: offset %d is past this node's log end and its metadata may be stale", topic, pn, f.next)
	case errors.As(err, &oor):
		hw := p.HighWatermark()
		if w.policy != client.ResetToEarliest && p.LeaderEpochStartOffset() > hw {
			// A new leader does not know its committed end yet (DESIGN §4): reset next poll.
			f.err = fmt.Errorf("the high watermark of %s-%d is not known yet", topic, pn)
			return p
		}
		f.resetTo(w.policy, p.Log().LogStartOffset(), hw)
	case err != nil && len(recs) == 0:
		f.err = err
	default:
		f.add(recs, next)
	}
	return p
}

func (f *partFetch) resetTo(policy string, logStart, hw int64) {
	f.reset = true
	if policy == client.ResetToEarliest {
		f.next = logStart
	} else {
		f.next = hw
	}
}

func (f *partFetch) add(recs []logstore.Record, next int64) {
	for len(recs) > 0 && recs[0].Offset < f.next { // only records at or past the position count
		recs = recs[1:]
	}
	f.recs = recs
	f.next = max(f.next, next)
}

// readLocal reads committed records from offset on, at most limit of them
// from about maxBytes of batches, going past ranges compaction emptied (a
// bounded number of reads). It returns the records and the offset after
// them (and after the empty ranges).
func readLocal(p Partition, offset int64, limit, maxBytes int) ([]logstore.Record, int64, error) {
	res, hw, err := p.Read(offset, maxBytes)
	if err != nil {
		return nil, offset, err
	}
	codecs := p.Log().Codecs()
	var recs []logstore.Record
	next := offset
	for reads := 0; ; reads++ {
		err = logstore.Batches(res.Data, func(b logstore.Batch) error {
			if len(recs) >= limit {
				return errStop
			}
			err := codecs.EachRecord(b, func(r logstore.Record) error {
				if r.Offset < next {
					return nil
				}
				if len(recs) >= limit {
					return errStop
				}
				recs = append(recs, r)
				next = r.Offset + 1
				return nil
			})
			if err == nil {
				next = max(next, b.NextOffset())
			}
			return err
		})
		if err != nil && !errors.Is(err, errStop) {
			return recs, next, fmt.Errorf("reading %d: %w", offset, err)
		}
		if len(recs) > 0 || next >= hw || len(res.Data) == 0 || reads >= 64 {
			return recs, next, nil
		}
		if res, _, err = p.Read(next, maxBytes); err != nil {
			return recs, next, nil // nothing yet; next still tells the truth
		}
	}
}

// mergeFair picks records round-robin, one from each partition in turn
// starting at partition turn mod n, until limit records or maxBytes of keys
// and values (the first record always goes, so that a large one cannot stall
// the member). It returns the partition index of each record picked, in
// order, and how many records of each partition were picked.
func mergeFair(parts []partFetch, limit, maxBytes int, turn uint64) (picks, taken []int) {
	n := len(parts)
	taken = make([]int, n)
	if n == 0 {
		return nil, taken
	}
	first := int(turn % uint64(n))
	size := 0
	for more := true; more && len(picks) < limit; {
		more = false
		for k := 0; k < n && len(picks) < limit; k++ {
			i := (first + k) % n
			if taken[i] >= len(parts[i].recs) {
				continue
			}
			r := &parts[i].recs[taken[i]]
			sz := len(r.Key) + len(r.Value)
			if len(picks) > 0 && size+sz > maxBytes {
				return picks, taken
			}
			picks = append(picks, i)
			taken[i]++
			size += sz
			more = true
		}
	}
	return picks, taken
}

// renderGroupRecords writes the reply by hand (see jsonenc.go), the records
// in the order picked, and counts records and bytes per topic.
func renderGroupRecords(p GroupPoll, member string, pollID int64, parts []partFetch, picks []int, enc encoding) ([]byte, map[string][2]int) {
	if p.MemberID == "" {
		p.MemberID = member
	}
	if p.Assignments == nil {
		p.Assignments = []client.TopicPartition{}
	}
	assignments, _ := json.Marshal(p.Assignments) // names and numbers only: cannot fail
	cursor := make([]int, len(parts))
	size := 256 + len(assignments)
	for _, i := range picks {
		r := &parts[i].recs[cursor[i]]
		cursor[i]++
		size += 2*(len(r.Key)+len(r.Value)) + 96
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"member_id":`...)
	buf = appendJSONString(buf, []byte(p.MemberID))
	buf = append(buf, `,"generation":`...)
	buf = strconv.AppendInt(buf, int64(p.Generation), 10)
	buf = append(buf, `,"poll_id":`...)
	buf = strconv.AppendInt(buf, pollID, 10)
	buf = append(buf, `,"assignments":`...)
	buf = append(buf, assignments...)
	buf = append(buf, `,"records":[`...)
	counts := make(map[string][2]int)
	prefixes := make([][]byte, len(parts))
	clear(cursor)
	for k, i := range picks {
		if prefixes[i] == nil {
			pre := appendJSONString([]byte(`{"topic":`), []byte(parts[i].pos.Topic))
			pre = append(pre, `,"partition":`...)
			pre = strconv.AppendInt(pre, int64(parts[i].pos.Partition), 10)
			prefixes[i] = append(pre, ',')
		}
		r := &parts[i].recs[cursor[i]]
		cursor[i]++
		if k > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, prefixes[i]...)
		buf = appendRecordFields(buf, r, enc)
		c := counts[parts[i].pos.Topic]
		c[0]++
		c[1] += len(r.Key) + len(r.Value)
		counts[parts[i].pos.Topic] = c
	}
	buf = append(buf, "]}\n"...)
	return buf, counts
}
