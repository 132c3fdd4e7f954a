package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/logstore"
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
