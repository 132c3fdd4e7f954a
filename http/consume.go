package httpapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/logstore"
)

// Consume limits.
const (
	defaultLimit    = 500
	maxLimit        = 100000
	defaultMaxBytes = 1 << 20
	maxMaxBytes     = 64 << 20
	maxWait         = 5 * time.Minute
)

type encoding int

const (
	encAuto encoding = iota
	encText
	encBase64
)

func parseEncoding(s string) (encoding, error) {
	switch s {
	case "", "auto":
		return encAuto, nil
	case "text":
		return encText, nil
	case "base64":
		return encBase64, nil
	}
	return 0, badRequest("query parameter encoding=%s must be auto, text or base64", quoteInput(s))
}

// intQuery parses an optional integer query parameter within [lo, hi].
func intQuery(c echo.Context, name string, def, lo, hi int64) (int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("query parameter %s=%s must be an integer between %d and %d", name, quoteInput(v), lo, hi)
	}
	return n, nil
}

// readQuery parses the query every read takes (partition consume, group
// poll): limit, max_bytes, wait_ms and encoding.
func readQuery(c echo.Context) (limit, maxBytes, waitMS int64, enc encoding, err error) {
	if limit, err = intQuery(c, "limit", defaultLimit, 1, maxLimit); err != nil {
		return
	}
	if maxBytes, err = intQuery(c, "max_bytes", defaultMaxBytes, 1, maxMaxBytes); err != nil {
		return
	}
	if waitMS, err = intQuery(c, "wait_ms", 0, 0, maxWait.Milliseconds()); err != nil {
		return
	}
	enc, err = parseEncoding(c.QueryParam("encoding"))
	return
}

func (s *Server) consume(c echo.Context) error {
	topic := c.Param("topic")
	pn, err := strconv.ParseInt(c.Param("partition"), 10, 32)
	if err != nil || pn < 0 {
		return badRequest("partition %s must be a non-negative integer", quoteInput(c.Param("partition")))
	}
	if _, err := s.b.TopicInfo(topic); err != nil {
		return err
	}
	limit, maxBytes, waitMS, enc, err := readQuery(c)
	if err != nil {
		return err
	}
	p, err := s.b.Partition(topic, int32(pn))
	if err != nil {
		return err
	}
	offset, err := resolveOffset(c.QueryParam("offset"), p)
	if err != nil {
		return s.staleOutOfRange(err)
	}
	if waitMS > 0 && offset >= p.HighWatermark() {
		ctx, cancel := context.WithTimeout(c.Request().Context(), time.Duration(waitMS)*time.Millisecond)
		err := p.WaitHW(ctx, offset)
		cancel()
		if err != nil && c.Request().Context().Err() != nil {
			return nil // the client went away
		}
	}
	res, hw, err := p.Read(offset, int(maxBytes))
	if err != nil {
		var oor *logstore.OutOfRangeError
		if errors.As(err, &oor) {
			return s.staleOutOfRange(outOfRange(offset, oor.LogStartOffset, hw))
		}
		return err
	}
	// The reply is written by hand (see jsonenc.go), records straight from the batches.
	buf := make([]byte, 0, len(res.Data)+len(res.Data)/4+256)
	buf = append(buf, `{"topic":`...)
	buf = appendJSONString(buf, []byte(topic))
	buf = append(buf, `,"partition":`...)
	buf = strconv.AppendInt(buf, pn, 10)
	buf = append(buf, `,"records":[`...)
	next := offset
	n, bytesOut := 0, 0
	// A read covers one segment; if compaction left it without records, go
	// on to the next ones (a bounded number) rather than answer empty.
	for reads := 0; ; reads++ {
		err = logstore.Batches(res.Data, func(b logstore.Batch) error {
			if n >= int(limit) {
				return errStop
			}
			err := p.Log().Codecs().EachRecord(b, func(r logstore.Record) error {
				if r.Offset < next {
					return nil
				}
				if n >= int(limit) {
					return errStop
				}
				if n > 0 {
					buf = append(buf, ',')
				}
				buf = appendRecordJSON(buf, &r, enc, -1)
				next = r.Offset + 1
				n++
				bytesOut += len(r.Key) + len(r.Value)
				return nil
			})
			if err == nil && n < int(limit) {
				next = max(next, b.NextOffset()) // past empty (compacted) ranges too
			}
			return err
		})
		if err != nil && !errors.Is(err, errStop) {
			return Errorf(client.CodeKafkaStorageError, "reading partition %d: %v", pn, err)
		}
		if n > 0 || next >= hw || len(res.Data) == 0 || reads >= 64 {
			break
		}
		if res, _, err = p.Read(next, int(maxBytes)); err != nil {
			break // the records so far (none) and next_offset still tell the truth
		}
	}
	buf = append(buf, `],"next_offset":`...)
	buf = strconv.AppendInt(buf, next, 10)
	buf = append(buf, `,"high_watermark":`...)
	buf = strconv.AppendInt(buf, hw, 10)
	buf = append(buf, `,"log_start_offset":`...)
	buf = strconv.AppendInt(buf, p.Log().LogStartOffset(), 10)
	buf = append(buf, "}\n"...)
	if s.metrics != nil {
		s.metrics.recordsOut(topic, n, bytesOut)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, buf)
}

var errStop = errors.New("stop")

// staleOutOfRange turns a 416 for an offset past the log end into a
// retriable 503 while this node's metadata is not known current: it may be a
// leader that was replaced (its log shorter than the real leader's), and a
// consumer told "out of range" would reset its position. Below the log
// start (retention passed it) any replica may say so.
func (s *Server) staleOutOfRange(err error) error {
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != client.CodeOffsetOutOfRange || ae.LogStartOffset == nil ||
		ae.offset < *ae.LogStartOffset || s.b.MetadataCurrent() {
		return err
	}
	return Errorf(client.CodeNotLeaderOrFollower, "%s; this node has not heard from the controller lately and may no longer lead the partition: retry", ae.Message)
}

// resolveOffset reads offset=N|earliest|latest (default earliest) against the
// partition. An offset up to the log end is in range (above the HW it waits or
// answers nothing); only below the log start or past the log end is 416.
func resolveOffset(v string, p Partition) (int64, error) {
	hw, start, leo := p.HighWatermark(), p.Log().LogStartOffset(), p.Log().LogEndOffset()
	var off int64
	switch v {
	case "", "earliest":
		return start, nil
	case "latest":
		// A new leader knows the committed end only once its HW reached the
		// start of its own epoch (DESIGN §4).
		if es := p.LeaderEpochStartOffset(); es > hw {
			return 0, Errorf(client.CodeLeaderNotAvailable, "the new leader's high watermark (%d) has not reached its epoch start (%d) yet; retry", hw, es)
		}
		return hw, nil
	default:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, badRequest("query parameter offset=%s must be an offset, earliest or latest", quoteInput(v))
		}
		if n < 0 {
			return 0, badRequest("query parameter offset=%d must not be negative", n)
		}
		off = n
	}
	if off < start || off > leo {
		return 0, outOfRange(off, start, hw)
	}
	return off, nil
}

// stream serves GET /v1/topics/{t}/records: NDJSON of every partition's
// records from `from` (earliest, latest or a timestamp in ms); with
// follow=true it keeps streaming new records until the client goes away.
func (s *Server) stream(c echo.Context) error {
	topic := c.Param("topic")
	info, err := s.b.TopicInfo(topic)
	if err != nil {
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
	var fromTS int64 = -1
	if from != "earliest" && from != "latest" {
		if fromTS, err = strconv.ParseInt(from, 10, 64); err != nil || fromTS < 0 {
			return badRequest("query parameter from=%s must be earliest, latest or a timestamp in ms", quoteInput(from))
		}
	}
	// Start positions come from each partition's leader, wherever it is.
	var ts *int64
	if fromTS >= 0 {
		ts = &fromTS
	}
	offs, err := s.b.TopicOffsets(c.Request().Context(), topic, ts)
	if err != nil {
		return err
	}
	pos := make([]int64, info.Partitions)
	for i, o := range offs.Partitions {
		switch {
		case from == "earliest":
			pos[i] = o.LogStartOffset
		case from == "latest":
			pos[i] = o.HighWatermark
		case o.Offset != nil:
			pos[i] = *o.Offset
		default:
			pos[i] = o.HighWatermark
		}
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	ctx := c.Request().Context()
	emit := func(r *logstore.Record, pi int32) {
		line = appendRecordJSON(line[:0], r, enc, pi)
		_, _ = bw.Write(append(line, '\n'))
	}
	idle := time.Now()
	for {
		changed := s.b.AnyChanged() // taken before reading, so no append slips between
		wrote, anyRemote := false, false
		for i := range pos {
			pi := int32(i)
			p, err := s.b.Partition(topic, pi)
			var ne *NotHereError
			switch {
			case errors.As(err, &ne):
				// Led elsewhere: poll the leader's consume endpoint.
				anyRemote = true
				recs, next, err := s.remoteRecords(ctx, ne, topic, pi, pos[i], remoteQuery{limit: 1000})
				if err != nil {
					continue // leader moving or down: try again next round
				}
				for j := range recs {
					emit(&recs[j], pi)
					wrote = true
				}
				pos[i] = max(pos[i], next)
				continue
			case err != nil:
				anyRemote = true // no leader right now: poll until there is one
				continue
			}
			res, _, err := p.Read(pos[i], defaultMaxBytes)
			if err != nil {
				var oor *logstore.OutOfRangeError
				if errors.As(err, &oor) && pos[i] < oor.LogStartOffset { // retention passed us
					pos[i] = oor.LogStartOffset
				}
				continue
			}
			_ = logstore.Batches(res.Data, func(b logstore.Batch) error {
				_ = p.Log().Codecs().EachRecord(b, func(r logstore.Record) error {
					if r.Offset >= pos[i] {
						emit(&r, pi)
						wrote = true
					}
					return nil
				})
				pos[i] = max(pos[i], b.NextOffset())
				return nil
			})
		}
		if wrote {
			if err := bw.Flush(); err != nil {
				return nil
			}
			w.Flush()
			idle = time.Now()
			continue
		}
		if !follow {
			_ = bw.Flush()
			return nil
		}
		wait := 15*time.Second - time.Since(idle)
		if anyRemote {
			wait = min(wait, remotePollInterval) // no wake-up comes from other nodes
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(max(wait, 0)):
			if time.Since(idle) >= 15*time.Second {
				// A blank line keeps proxies from timing out an idle stream and
				// tells us promptly when the client has gone.
				if _, err := w.Write([]byte("\n")); err != nil {
					return nil
				}
				w.Flush()
				idle = time.Now()
			}
		}
	}
}

// remotePollInterval paces a follow stream's polls of partitions led elsewhere.
const remotePollInterval = 200 * time.Millisecond

// remoteQuery bounds a read from a partition's leader; zero fields take the
// consume endpoint's defaults.
type remoteQuery struct {
	limit, maxBytes, waitMS int64
}

// remoteRecords reads committed records of a partition from its leader. An
// error reply comes back as an *Error with the leader's code (and, on
// OFFSET_OUT_OF_RANGE, the log's bounds).
func (s *Server) remoteRecords(ctx context.Context, ne *NotHereError, topic string, p int32, offset int64, q remoteQuery) ([]logstore.Record, int64, error) {
	if ne.Addr == "" {
		return nil, offset, fmt.Errorf("%s has no known address", ne.What)
	}
	url := fmt.Sprintf("http://%s/v1/topics/%s/partitions/%d/records?offset=%d&encoding=base64", ne.Addr, topic, p, offset)
	for _, f := range []struct {
		name string
		v    int64
	}{{"limit", q.limit}, {"max_bytes", q.maxBytes}, {"wait_ms", q.waitMS}} {
		if f.v > 0 {
			url += "&" + f.name + "=" + strconv.FormatInt(f.v, 10)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, offset, err
	}
	req.Header.Set(ForwardedHeader, s.servedBy)
	resp, err := s.fwd.client.Do(req)
	if err != nil {
		return nil, offset, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb client.ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb) != nil || eb.ErrorCode == "" {
			return nil, offset, fmt.Errorf("%s answered %d", ne.What, resp.StatusCode)
		}
		return nil, offset, &Error{Status: resp.StatusCode, Code: eb.ErrorCode, Retriable: eb.Retriable,
			Message:        fmt.Sprintf("%s answered: %s", ne.What, eb.Message),
			LogStartOffset: eb.LogStartOffset, HighWatermark: eb.HighWatermark}
	}
	var cr client.ConsumeResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&cr); err != nil {
		return nil, offset, fmt.Errorf("%s sent an unreadable reply: %w", ne.What, err)
	}
	out := make([]logstore.Record, 0, len(cr.Records))
	for _, r := range cr.Records {
		rec := logstore.Record{Offset: r.Offset, Timestamp: r.Timestamp}
		if r.KeyB64 != nil {
			if rec.Key, err = base64.StdEncoding.DecodeString(*r.KeyB64); err != nil {
				return nil, offset, fmt.Errorf("%s sent a bad key: %w", ne.What, err)
			}
		}
		if r.ValueB64 != nil {
			if rec.Value, err = base64.StdEncoding.DecodeString(*r.ValueB64); err != nil {
				return nil, offset, fmt.Errorf("%s sent a bad value: %w", ne.What, err)
			}
		}
		keys := make([]string, 0, len(r.Headers))
		for k := range r.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rec.Headers = append(rec.Headers, logstore.Header{Key: k, Value: []byte(r.Headers[k])})
		}
		out = append(out, rec)
	}
	return out, cr.NextOffset, nil
}
