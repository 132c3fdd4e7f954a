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
	"weir/fetch"
	"weir/logstore"
)

// Group poll timing.
const (
	// pollFetchGrace is how long reads already in flight may still finish
	// once another partition has answered with records: without it a
	// partition led elsewhere would lose every race to a local one.
	pollFetchGrace = 250 * time.Millisecond
	// pollRemoteSlack is how far past wait_ms a read from another node may
	// run (its network round trip), at most.
	pollRemoteSlack = time.Second
	// minPartitionBytes is the least a poll reads of each partition when
	// max_bytes is shared among many.
	minPartitionBytes = 64 << 10
	// pollRotateWait bounds a long-poll of one leader node while more
	// leader nodes wait for a slot than there are (see maxReadsInFlight).
	pollRotateWait = time.Second
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
	wait := s.readWait(c, waitMS)
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
	turn := s.pollTurn.Add(1)
	if err := pollFailure(parts, turn); err != nil {
		return err // positions stay: the member sees the error, nothing is skipped
	}
	picks, taken := mergeFair(parts, int(limit), int(maxBytes), turn)
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

// pollFailure is what a poll answers instead of records when a partition's
// log cannot be read: that partition's error when it is first in the
// poll's turn, or when no partition has records. Meanwhile the other
// partitions' records flow (as Kafka's consumer raises such an error only
// when it has nothing else to hand out).
func pollFailure(parts []partFetch, turn uint64) error {
	if len(parts) == 0 {
		return nil
	}
	if f := &parts[turn%uint64(len(parts))]; f.fatal != nil && len(f.recs) == 0 {
		return f.fatal
	}
	var first *Error
	for i := range parts {
		if len(parts[i].recs) > 0 {
			return nil
		}
		if first == nil {
			first = parts[i].fatal
		}
	}
	if first != nil {
		return first
	}
	return nil
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
	// err: the partition could not be read this time (no leader, leader
	// unreachable): it sits this poll out.
	err error
	// fatal: its log cannot be read at next (KAFKA_STORAGE_ERROR), which the
	// member must see (see pollFailure).
	fatal *Error
}

// done reports whether the partition has something for the poll to answer.
func (f *partFetch) done() bool { return len(f.recs) > 0 || f.reset || f.fatal != nil }

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

func (f *partFetch) resetTo(policy string, logStart, hw int64) {
	f.reset = true
	if policy == client.ResetToEarliest {
		f.next = logStart
	} else {
		f.next = hw
	}
}

// failed files a read's failure: one the member must see, or one that
// only keeps the partition out of this poll.
func (f *partFetch) failed(err error) {
	var ae *Error
	if isStorageFailure(err) && errors.As(err, &ae) {
		f.fatal = ae
		return
	}
	f.err = err
}

// fetchPositions reads every position of the poll. With a wait,
// partitions without records wait for some (local ones for an append,
// remote ones on their leader's long-poll) until the first records of any
// partition arrive or the wait is over.
func (s *Server) fetchPositions(ctx context.Context, p GroupPoll, limit, maxBytes int, wait time.Duration) []partFetch {
	deadline := time.Now().Add(wait)
	n := len(p.Positions)
	if n == 0 {
		if wait > 0 { // nothing assigned: wait anyway, so that a polling loop does not spin
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
		return nil
	}
	r := &pollRun{s: s, policy: p.AutoOffsetReset, deadline: deadline, waiting: wait > 0,
		lim:     fetch.Limits{MaxRecords: limit, MaxBytes: max(maxBytes/n, min(maxBytes, minPartitionBytes))},
		parts:   make([]partFetch, n),
		state:   make([]pollState, n),
		results: make(chan pollResult, maxReadsInFlight)}
	for i, pos := range p.Positions {
		r.parts[i] = partFetch{pos: pos, next: pos.Offset}
		r.state[i].dirty = true
	}
	r.run(ctx)
	return r.parts
}

// pollRun is one poll's reads: at most maxReadsInFlight at a time, local
// partitions each on their own, remote ones one request per leader node.
// Only the poll's goroutine touches parts and state; a read works on a
// copy of its partFetch and hands it back through results.
type pollRun struct {
	s        *Server
	policy   string
	deadline time.Time
	waiting  bool
	lim      fetch.Limits // per partition
	parts    []partFetch
	state    []pollState
	results  chan pollResult
	running  int // reads in flight
	waits    int // long-polls among them
	found    bool
	wg       sync.WaitGroup
}

type pollState struct {
	inFlight bool
	read     bool      // read at least once (a remote one long-polls next)
	dirty    bool      // local: not read since the last append anywhere
	retryAt  time.Time // after a failure that passes
}

// pollResult hands back the partFetches of one read.
type pollResult struct {
	idx  []int
	fs   []partFetch
	wait bool
}

func (r *pollRun) run(ctx context.Context) {
	// Plain reads may run pollFetchGrace past the first records (and past
	// the deadline by pollRemoteSlack); long-polls end with the first records.
	readCtx, cutReads := context.WithDeadline(ctx, r.deadline.Add(pollRemoteSlack))
	waitCtx, cutWaits := context.WithCancel(readCtx)
	defer func() {
		cutWaits()
		cutReads()
		for ; r.running > 0; r.running-- {
			r.apply(<-r.results)
		}
		r.wg.Wait()
	}()
	deadline := time.NewTimer(time.Until(r.deadline))
	defer deadline.Stop()
	var grace <-chan time.Time
	// Taken before the reads and renewed only once it fired (before the
	// reads start again): renewing it on every turn of the loop would drop
	// an append that came after a read found nothing but before the renewal.
	changed := r.s.b.AnyChanged()
	for {
		retry := r.start(readCtx, waitCtx)
		if r.running == 0 && (r.found || !r.waiting) {
			return
		}
		var retryT *time.Timer
		var retryC <-chan time.Time
		if !retry.IsZero() && r.waiting && !r.found {
			retryT = time.NewTimer(time.Until(retry))
			retryC = retryT.C
		}
		select {
		case res := <-r.results:
			r.running--
			r.apply(res)
			if r.found && grace == nil {
				cutWaits()
				t := time.NewTimer(pollFetchGrace)
				defer t.Stop()
				grace = t.C
			}
		case <-changed:
			changed = r.s.b.AnyChanged()
			for i := range r.state {
				r.state[i].dirty = true
			}
		case <-retryC:
		case <-deadline.C:
			r.waiting = false
			cutWaits()
		case <-grace:
			return
		case <-ctx.Done():
			return
		}
		if retryT != nil {
			retryT.Stop()
		}
	}
}

// start starts the reads that are due and a slot allows; it returns the
// earliest time a failed partition may be tried again (zero: none).
func (r *pollRun) start(readCtx, waitCtx context.Context) (retry time.Time) {
	now := time.Now()
	remote := map[string][]int{}
	var nodes []string
	for i := range r.parts {
		st, f := &r.state[i], &r.parts[i]
		if st.inFlight || f.done() || st.read && (!r.waiting || r.found) {
			continue
		}
		if now.Before(st.retryAt) {
			if retry.IsZero() || st.retryAt.Before(retry) {
				retry = st.retryAt
			}
			continue
		}
		p, err := r.s.b.Partition(f.pos.Topic, f.pos.Partition)
		var ne *NotHereError
		switch {
		case errors.As(err, &ne) && ne.Addr != "":
			if len(remote[ne.Addr]) == 0 {
				nodes = append(nodes, ne.Addr)
			}
			remote[ne.Addr] = append(remote[ne.Addr], i)
		case err != nil:
			f.err, st.read, st.retryAt = err, true, now.Add(noLeaderRetry)
			if retry.IsZero() || st.retryAt.Before(retry) {
				retry = st.retryAt
			}
		case (!st.read || st.dirty) && r.running < maxReadsInFlight:
			r.readLocal(readCtx, i, p)
		}
	}
	for _, addr := range nodes {
		idx := remote[addr]
		long := r.waiting && !r.found
		for _, i := range idx {
			long = long && r.state[i].read
		}
		switch {
		case r.running >= maxReadsInFlight:
			return retry
		case long && r.waits >= maxReadsInFlight-1:
			continue // a slot stays free for local reads
		}
		var wait time.Duration
		if long {
			if wait = time.Until(r.deadline); wait < time.Millisecond {
				continue
			}
			if len(nodes) > maxReadsInFlight-1 {
				wait = min(wait, pollRotateWait) // more nodes than slots: take turns
			}
		}
		ctx := readCtx
		if long {
			ctx = waitCtx
		}
		r.readRemote(ctx, addr, idx, wait)
	}
	return retry
}

// readLocal reads partition i from this node's replica p, in a goroutine.
func (r *pollRun) readLocal(ctx context.Context, i int, p Partition) {
	f := r.parts[i]
	st := &r.state[i]
	st.inFlight, st.read, st.dirty = true, true, false
	r.running++
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f.err = nil
		if ctx.Err() == nil {
			r.s.readPart(p, &f, r.lim, r.policy)
		}
		r.results <- pollResult{idx: []int{i}, fs: []partFetch{f}}
	}()
}

// readRemote reads partitions idx from their leader at addr, in a goroutine.
func (r *pollRun) readRemote(ctx context.Context, addr string, idx []int, wait time.Duration) {
	fs := make([]partFetch, len(idx))
	req := readRequest{MaxBytes: min(r.lim.MaxBytes*len(idx), maxMaxBytes), Partitions: make([]readPartition, len(idx))}
	for k, i := range idx {
		fs[k] = r.parts[i]
		r.state[i].inFlight, r.state[i].read = true, true
		req.Partitions[k] = readPartition{Topic: fs[k].pos.Topic, Partition: fs[k].pos.Partition, Offset: fs[k].next, MaxBytes: r.lim.MaxBytes}
	}
	r.running++
	if wait > 0 {
		r.waits++
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		parts, err := r.s.readRemote(ctx, addr, req, wait)
		for k := range fs {
			fs[k].err = nil
			if err != nil {
				fs[k].err = err
				continue
			}
			r.s.applyRemote(&fs[k], parts[k], r.lim, r.policy)
		}
		r.results <- pollResult{idx: idx, fs: fs, wait: wait > 0}
	}()
}

// apply takes back what a read found.
func (r *pollRun) apply(res pollResult) {
	if res.wait {
		r.waits--
	}
	for k, i := range res.idx {
		f := res.fs[k]
		r.parts[i] = f
		st := &r.state[i]
		st.inFlight = false
		if f.err != nil {
			st.retryAt = time.Now().Add(noLeaderRetry)
		}
		if f.done() {
			r.found = true
		}
	}
}

// readPart reads f's partition from its local replica p, from f.next. An
// out-of-range position is reset per the member's policy.
func (s *Server) readPart(p Partition, f *partFetch, lim fetch.Limits, policy string) {
	var recs []logstore.Record
	res, err := fetch.Records(p, f.next, lim, func(r logstore.Record) error {
		recs = append(recs, r)
		return nil
	})
	var oor *logstore.OutOfRangeError
	switch {
	case errors.As(err, &oor) && f.next >= oor.LogStartOffset && !s.b.MetadataCurrent():
		// Past this replica's end while its metadata may be stale: the real
		// leader may have more. Skip it this poll rather than move the position.
		f.err = fmt.Errorf("%s-%d: offset %d is past this node's log end and its metadata may be stale", f.pos.Topic, f.pos.Partition, f.next)
	case errors.As(err, &oor):
		hw := p.HighWatermark()
		if policy != client.ResetToEarliest && p.LeaderEpochStartOffset() > hw {
			// A new leader does not know its committed end yet (DESIGN §4): reset next poll.
			f.err = fmt.Errorf("the high watermark of %s-%d is not known yet", f.pos.Topic, f.pos.Partition)
			return
		}
		f.resetTo(policy, p.Log().LogStartOffset(), hw)
	default:
		f.add(recs, res.Next)
		if err != nil {
			f.failed(s.readFailure(err, res.HighWatermark))
		}
	}
}

// applyRemote files what f's leader answered for it.
func (s *Server) applyRemote(f *partFetch, part remotePart, lim fetch.Limits, policy string) {
	if e := part.err; e != nil {
		if e.Code == client.CodeOffsetOutOfRange && e.LogStartOffset != nil && e.HighWatermark != nil {
			f.resetTo(policy, *e.LogStartOffset, *e.HighWatermark)
			return
		}
		f.failed(e)
		return
	}
	var recs []logstore.Record
	res, err := s.decodeRemote(part, f.next, lim, func(r logstore.Record) error {
		recs = append(recs, r)
		return nil
	})
	f.add(recs, res.Next)
	if err != nil {
		f.failed(err)
	}
}

func (f *partFetch) add(recs []logstore.Record, next int64) {
	f.recs = recs
	f.next = max(f.next, next)
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
