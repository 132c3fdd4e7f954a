package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/fetch"
	"weir/logstore"
)

// Follow stream timing.
const (
	// streamKeepAlive: after this long without a record, a blank line keeps
	// proxies from timing out an idle stream and tells us promptly when the
	// client has gone.
	streamKeepAlive = 15 * time.Second
	// streamRemoteWait is how long a read of partitions led elsewhere waits
	// on their leader for records before it is asked again.
	streamRemoteWait = 10 * time.Second
)

// stream serves GET /v1/topics/{t}/records: NDJSON of every partition's
// records from `from` (earliest, latest or a timestamp in ms); with
// follow=true it keeps streaming new records, of partitions added meanwhile
// too, until the client goes away. A partition whose log cannot be read
// ends the stream with an error line (the API's error body, with the
// partition and the offset); without follow, so does a partition that
// could not be read at all (no leader).
func (s *Server) stream(c echo.Context) error {
	topic := c.Param("topic")
	if _, err := s.b.TopicInfo(topic); err != nil {
		return err
	}
	follow, err := boolQuery(c, "follow")
	if err != nil {
		return err
	}
	enc, err := parseEncoding(c.QueryParam("encoding"))
	if err != nil {
		return err
	}
	from := c.QueryParam("from")
	if from == "" {
		from = "earliest"
	}
	var ts *int64
	if from != "earliest" && from != "latest" {
		t, err := strconv.ParseInt(from, 10, 64)
		if err != nil || t < 0 {
			return badRequest("query parameter from=%s must be earliest, latest or a timestamp in ms", quoteInput(from))
		}
		ts = &t
	}
	// Start positions come from each partition's leader, wherever it is.
	offs, err := s.b.TopicOffsets(c.Request().Context(), topic, ts)
	if err != nil {
		return err
	}
	st := &topicStream{s: s, topic: topic, enc: enc, follow: follow, results: make(chan streamRead, maxReadsInFlight)}
	for _, o := range offs.Partitions {
		pos := o.HighWatermark
		switch {
		case from == "earliest":
			pos = o.LogStartOffset
		case o.Offset != nil:
			pos = *o.Offset
		}
		st.grow(int(o.Partition) + 1)
		st.parts[o.Partition].pos = pos
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	w.Flush() // the client learns at once that the stream is open, records or not
	st.w, st.bw = w, bufio.NewWriterSize(w, 64<<10)
	st.run(c.Request().Context())
	return nil
}

// topicStream is one follow stream. Partitions this node leads are read in
// the stream's goroutine when an append wakes it; the others are read from
// their leaders, a long-poll per leader node for the partitions it leads, at
// most maxReadsInFlight-1 at a time, whose answers come back through results.
type topicStream struct {
	s       *Server
	topic   string
	enc     encoding
	follow  bool
	parts   []streamPart // by partition
	results chan streamRead
	running int // remote reads in flight
	w       *echo.Response
	bw      *bufio.Writer
	line    []byte
	wrote   bool // since the last flush
	gone    bool // the client went away
}

type streamPart struct {
	pos      int64
	inFlight bool
	// caughtUp: a read reached the end it saw (without follow, the
	// partition is done); see caughtUp.
	caughtUp bool
	retryAt  time.Time // after a failure that passes: no leader, leader unreachable
	failed   *Error    // that failure, reported if the stream ends without follow
}

// streamRead is what a read of one leader node brought back.
type streamRead struct {
	addr  string
	req   readRequest
	parts []remotePart
	err   error
}

// grow makes room for n partitions; new ones start at their log start
// (every record of a partition added while streaming is new).
func (st *topicStream) grow(n int) {
	for len(st.parts) < n {
		st.parts = append(st.parts, streamPart{})
	}
}

// streamEnd ends a stream with an error line.
type streamEnd struct {
	err       *Error
	partition int32
	offset    int64
}

func (st *topicStream) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	idle := time.Now()
	for !st.gone {
		changed := st.s.b.AnyChanged() // taken before reading, so no append slips between
		end := st.refresh()
		if end == nil {
			end = st.readLocal()
		}
		if end != nil {
			st.fail(end)
			return
		}
		st.startRemote(ctx, &wg)
		if st.wrote {
			st.flush()
			idle = time.Now()
			continue
		}
		if !st.follow && st.running == 0 {
			st.finish()
			return
		}
		now := time.Now()
		wake := idle.Add(streamKeepAlive)
		for _, p := range st.parts {
			if p.retryAt.After(now) && p.retryAt.Before(wake) { // (one due already waits for a slot: a result wakes us)
				wake = p.retryAt
			}
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			st.gone = true
		case <-changed:
		case r := <-st.results:
			st.running--
			if end := st.applyRemote(r); end != nil {
				t.Stop()
				st.fail(end)
				return
			}
		case <-t.C:
			if time.Since(idle) >= streamKeepAlive {
				st.keepAlive()
				idle = time.Now()
			}
		}
		t.Stop()
	}
}

// refresh picks up partitions added to the topic; a deleted topic ends the stream.
func (st *topicStream) refresh() *streamEnd {
	info, err := st.s.b.TopicInfo(st.topic)
	var ae *Error
	switch {
	case errors.As(err, &ae) && ae.Code == client.CodeUnknownTopicOrPartition:
		return &streamEnd{err: ae, partition: -1, offset: -1}
	case err == nil:
		st.grow(info.Partitions)
	} // other failures pass (the node is loading): try again next round
	return nil
}

// due reports whether partition p should be read now.
func (st *topicStream) due(p *streamPart, now time.Time) bool {
	return !p.inFlight && !(!st.follow && (p.caughtUp || p.failed != nil)) && !now.Before(p.retryAt)
}

// readLocal reads the partitions this node leads and notes the others.
func (st *topicStream) readLocal() *streamEnd {
	now := time.Now()
	for i := range st.parts {
		sp := &st.parts[i]
		if !st.due(sp, now) {
			continue
		}
		pi := int32(i)
		p, err := st.s.b.Partition(st.topic, pi)
		var ne *NotHereError
		switch {
		case errors.As(err, &ne):
			continue // startRemote reads it
		case err != nil:
			st.passing(sp, asAPIError(err), now)
			continue
		}
		from := sp.pos
		res, err := fetch.Records(p, sp.pos, fetch.Limits{MaxBytes: defaultMaxBytes}, func(r logstore.Record) error {
			return st.emit(&r, pi)
		})
		sp.pos, sp.caughtUp = max(sp.pos, res.Next), err == nil && caughtUp(res, from)
		if st.gone {
			return nil
		}
		if err == nil {
			sp.failed, sp.retryAt = nil, time.Time{}
			continue
		}
		var oor *logstore.OutOfRangeError
		if errors.As(err, &oor) && sp.pos < oor.LogStartOffset { // retention passed us
			sp.pos = oor.LogStartOffset
			continue
		}
		ae := st.s.readFailure(err, res.HighWatermark)
		if isStorageFailure(ae) {
			return &streamEnd{err: ae, partition: pi, offset: sp.pos}
		}
		st.passing(sp, ae, now)
	}
	return nil
}

// caughtUp reports whether a read from `from` that ended with res reached
// the end of the partition it saw: its high watermark, or nothing more
// below it. A partition whose HW is unknown (-1: a leader's reply had no
// room for it and left it out, unread) is not caught up.
func caughtUp(res fetch.Result, from int64) bool {
	return res.HighWatermark >= 0 && (res.Next >= res.HighWatermark || res.Next == from)
}

// passing files a failure that passes: the partition is tried again shortly
// (without follow, the stream ends reporting it).
func (st *topicStream) passing(sp *streamPart, err *Error, now time.Time) {
	sp.failed, sp.retryAt = err, now.Add(noLeaderRetry)
}

// startRemote starts a read of each leader node for its partitions that are
// due, as slots allow (a partition added, or moved to a node whose read is in
// flight, goes in a read of its own rather than wait for that one).
func (st *topicStream) startRemote(ctx context.Context, wg *sync.WaitGroup) {
	now := time.Now()
	reqs := map[string]*readRequest{}
	var nodes []string
	for i := range st.parts {
		sp := &st.parts[i]
		if !st.due(sp, now) {
			continue
		}
		_, err := st.s.b.Partition(st.topic, int32(i))
		var ne *NotHereError
		if !errors.As(err, &ne) {
			continue
		}
		if ne.Addr == "" {
			st.passing(sp, Errorf(client.CodeLeaderNotAvailable, "%s has no known address", ne.What), now)
			continue
		}
		req := reqs[ne.Addr]
		if req == nil {
			req = &readRequest{}
			reqs[ne.Addr] = req
			nodes = append(nodes, ne.Addr)
		}
		req.Partitions = append(req.Partitions, readPartition{Topic: st.topic, Partition: int32(i), Offset: sp.pos, MaxBytes: defaultMaxBytes})
	}
	slices.Sort(nodes)
	wait := streamRemoteWait
	switch {
	case !st.follow:
		wait = 0
	case len(nodes) > maxReadsInFlight-1-st.running:
		wait = pollRotateWait // more nodes than slots: take turns
	}
	for _, addr := range nodes {
		if st.running >= maxReadsInFlight-1 {
			return
		}
		req := *reqs[addr]
		req.MaxBytes = min(defaultMaxBytes*len(req.Partitions), maxMaxBytes)
		for _, p := range req.Partitions {
			st.parts[p.Partition].inFlight = true
		}
		st.running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts, err := st.s.readRemote(ctx, addr, req, wait)
			st.results <- streamRead{addr: addr, req: req, parts: parts, err: err}
		}()
	}
}

// applyRemote streams what a leader node answered.
func (st *topicStream) applyRemote(r streamRead) *streamEnd {
	now := time.Now()
	for k, rp := range r.req.Partitions {
		sp := &st.parts[rp.Partition]
		sp.inFlight = false
		if st.gone {
			continue
		}
		if r.err != nil {
			st.passing(sp, asAPIError(r.err), now)
			continue
		}
		part := r.parts[k]
		if e := part.err; e != nil {
			switch {
			case e.Code == client.CodeOffsetOutOfRange && e.LogStartOffset != nil && sp.pos < *e.LogStartOffset:
				sp.pos = *e.LogStartOffset // retention passed us
			case isStorageFailure(e):
				return &streamEnd{err: e, partition: rp.Partition, offset: sp.pos}
			default:
				st.passing(sp, e, now)
			}
			continue
		}
		from := sp.pos
		res, err := st.s.decodeRemote(part, sp.pos, fetch.Limits{}, func(rec logstore.Record) error {
			return st.emit(&rec, rp.Partition)
		})
		sp.pos, sp.caughtUp = max(sp.pos, res.Next), err == nil && caughtUp(res, from)
		sp.failed, sp.retryAt = nil, time.Time{}
		if err != nil && !st.gone {
			return &streamEnd{err: asAPIError(err), partition: rp.Partition, offset: sp.pos}
		}
	}
	return nil
}

// emit writes one record line; a failed write means the client has gone.
func (st *topicStream) emit(r *logstore.Record, partition int32) error {
	st.line = appendRecordJSON(st.line[:0], r, st.enc, partition)
	st.line = append(st.line, '\n')
	if _, err := st.bw.Write(st.line); err != nil {
		st.gone = true
		return err
	}
	st.wrote = true
	return nil
}

func (st *topicStream) flush() {
	st.wrote = false
	if err := st.bw.Flush(); err != nil {
		st.gone = true
		return
	}
	st.w.Flush()
}

func (st *topicStream) keepAlive() {
	if _, err := st.bw.WriteString("\n"); err != nil {
		st.gone = true
		return
	}
	st.flush()
}

// streamErrorLine is an error line: the API's error body, and the partition
// and offset it concerns.
type streamErrorLine struct {
	client.ErrorBody
	Partition *int32 `json:"partition,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
}

// fail writes the records so far and the error line that ends the stream.
func (st *topicStream) fail(end *streamEnd) {
	if st.gone {
		return
	}
	line := streamErrorLine{ErrorBody: client.ErrorBody{ErrorCode: end.err.Code, Message: end.err.Message, Retriable: end.err.Retriable}}
	if end.partition >= 0 {
		line.Partition, line.Offset = &end.partition, &end.offset
	}
	b, err := json.Marshal(line)
	if err != nil { // strings and numbers only: cannot happen
		st.s.log.Error("stream error line", "err", err)
		return
	}
	if _, err := st.bw.Write(append(b, '\n')); err == nil {
		st.flush()
	}
}

// finish ends a stream without follow once every partition was read: with
// an error line for a partition that could not be read at all.
func (st *topicStream) finish() {
	for i, p := range st.parts {
		if p.failed != nil && !p.caughtUp {
			st.fail(&streamEnd{err: p.failed, partition: int32(i), offset: p.pos})
			return
		}
	}
	st.flush()
}
