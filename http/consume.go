package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/fetch"
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
	if wait := s.readWait(c, waitMS); wait > 0 && offset >= p.HighWatermark() {
		ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
		err := p.WaitHW(ctx, offset)
		cancel()
		if err != nil && c.Request().Context().Err() != nil {
			return nil // the client went away
		}
	}
	// The reply is written by hand (see jsonenc.go), records straight from the batches.
	bp := s.replyBuffer()
	defer s.putReplyBuffer(bp)
	buf := append((*bp)[:0], `{"topic":`...)
	buf = appendJSONString(buf, []byte(topic))
	buf = append(buf, `,"partition":`...)
	buf = strconv.AppendInt(buf, pn, 10)
	buf = append(buf, `,"records":[`...)
	sep := false
	res, err := fetch.Records(p, offset, fetch.Limits{MaxBytes: int(maxBytes), MaxRecords: int(limit)}, func(r logstore.Record) error {
		if sep {
			buf = append(buf, ',')
		}
		buf = appendRecordJSON(buf, &r, enc, -1)
		sep = true
		return nil
	})
	*bp = buf
	// A log damaged further on answers what comes before the damage; the
	// next consume, from next_offset, meets the error. (fetch.Records fails
	// after yielding records only on such damage.)
	if err != nil && res.Records == 0 {
		return s.readFailure(err, res.HighWatermark)
	}
	buf = append(buf, `],"next_offset":`...)
	buf = strconv.AppendInt(buf, res.Next, 10)
	buf = append(buf, `,"high_watermark":`...)
	buf = strconv.AppendInt(buf, res.HighWatermark, 10)
	buf = append(buf, `,"log_start_offset":`...)
	buf = strconv.AppendInt(buf, p.Log().LogStartOffset(), 10)
	buf = append(buf, "}\n"...)
	*bp = buf
	if s.metrics != nil {
		s.metrics.recordsOut(topic, res.Records, res.Bytes)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, buf)
}

// replyBuffer lends a buffer for a reply written by hand; putReplyBuffer
// takes it back once the reply is written (c.Blob copies it out).
func (s *Server) replyBuffer() *[]byte {
	if bp, ok := s.replies.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (s *Server) putReplyBuffer(bp *[]byte) {
	if cap(*bp) <= maxPooledReply { // a rare huge reply is not kept
		s.replies.Put(bp)
	}
}

// maxPooledReply is the largest reply buffer kept for reuse.
const maxPooledReply = 4 << 20

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
