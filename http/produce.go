package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"weir/client"
	"weir/logstore"
	"weir/replication"
)

// stickyCounter spreads keyless records: one partition per request, the next
// one for the next request (Kafka's sticky partitioner, per request).
type stickyCounter struct{ n atomic.Uint64 }

func (s *stickyCounter) next(partitions int) int32 {
	return int32(s.n.Add(1) % uint64(partitions))
}

// Murmur2 is Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2).
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition is where Kafka's default partitioner puts a keyed record.
func KeyPartition(key []byte, partitions int) int32 {
	return int32(int64(Murmur2(key)&0x7fffffff) % int64(partitions))
}

func (s *Server) produce(c echo.Context) error {
	topic := c.Param("topic")
	info, err := s.b.TopicInfo(topic)
	if err != nil {
		return err
	}
	if info.Internal {
		// As Kafka (INVALID_TOPIC_EXCEPTION): only the cluster writes its
		// internal topics, through its own path; a client's record in
		// __consumer_offsets would forge a group's committed offset.
		return Errorf(client.CodeInvalidTopic, "topic %s is internal: clients cannot produce to it (reading it is allowed)", quoteInput(topic))
	}
	fixed := int32(-1)
	if ps := c.Param("partition"); ps != "" {
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			return badRequest("partition %s must be a non-negative integer", quoteInput(ps))
		}
		fixed = int32(p)
	}
	acks, err := replication.ParseAcks(c.QueryParam("acks"))
	if err != nil {
		return badRequest("query parameter acks=%s: must be all, 1 or 0", quoteInput(c.QueryParam("acks")))
	}
	timeout := s.opts.RequestTimeout
	if v := c.QueryParam("timeout_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 1 || ms > 3_600_000 {
			return badRequest("query parameter timeout_ms=%s must be between 1 and 3600000", quoteInput(v))
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	mt, err := bodyMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var key []byte
	if q := c.QueryParams(); q.Has("key") {
		key = []byte(q.Get("key"))
	}
	st, _ := s.produces.Get().(*produceState)
	if st == nil {
		st = &produceState{}
	}
	defer func() { // after the appends and the reply: the batches live in st
		if st.memory() <= maxPooledProduce {
			s.produces.Put(st)
		}
	}()
	st.reset(info, fixed, key, time.Now().UnixMilli(), s.opts.MaxRequestRecords,
		func() int32 { return s.sticky.next(info.Partitions) })
	if err := st.parse(body, mt); err != nil {
		return err
	}
	if len(st.place) == 0 {
		return badRequest("records: the request holds no record")
	}
	// Resolve every partition before writing any, so a missing leader writes nothing.
	// Partitions led elsewhere are sent to their leaders, split from this request.
	parts := make([]Partition, len(st.batches))
	remote := make([]*NotHereError, len(st.batches))
	for i, b := range st.batches {
		part, err := s.b.Partition(topic, b.partition)
		var ne *NotHereError
		switch {
		case errors.As(err, &ne):
			if len(st.batches) == 1 { // the whole body goes as it is, to that partition
				fwd := *ne
				fwd.Path = fmt.Sprintf("/v1/topics/%s/partitions/%d/records", url.PathEscape(topic), b.partition)
				return &fwd
			}
			if c.Request().Header.Get(ForwardedHeader) != "" {
				return Errorf(client.CodeNotLeaderOrFollower, "%s; this node's metadata may be behind, retry", ne.Error())
			}
			remote[i] = ne
		case err != nil:
			return err
		default:
			parts[i] = part
		}
	}
	// Local appends wait timeout_ms; a remote partition's call is bounded by
	// the forwarder instead (timeout_ms at the leader, plus the request
	// timeout and a margin): cut at timeout_ms, a leader's own outcomes
	// after it would be lost as "unknown".
	ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
	defer cancel()
	appendBatch := func(i int) {
		b := st.batches[i]
		batch, err := b.b.Finish(logstore.BatchOptions{})
		switch {
		case err != nil:
			b.err = asAPIError(err)
		case remote[i] != nil:
			b.remote, err = s.produceRemote(c.Request().Context(), remote[i], topic, b.partition, batch, acks, timeout)
			if err != nil {
				b.err = asAPIError(err)
			}
		default:
			b.logAppend = parts[i].Log().Config().MessageTimestampType == logstore.LogAppendTime
			b.res, err = parts[i].Append(ctx, batch, acks)
			if err != nil && b.res.AppendTime != 0 {
				// Appended, then not committed (leadership lost, ISR too small, time
				// up): the records may yet be committed, so the outcome is unknown.
				err = Errorf(client.CodeRequestTimedOut, "offsets %d-%d were appended but not committed in time (%v); the outcome is unknown",
					b.res.BaseOffset, b.res.LastOffset, err)
			}
			if err != nil {
				b.err = asAPIError(err)
			}
		}
	}
	if len(st.batches) == 1 {
		appendBatch(0)
	} else {
		var wg sync.WaitGroup
		for i := range st.batches {
			wg.Go(func() { appendBatch(i) })
		}
		wg.Wait()
	}
	if s.metrics != nil {
		s.metrics.recordsIn(topic, len(st.place), st.bytes)
	}
	return writeProduceReply(c, st, acks)
}

// produceErrorReply is a produce's reply when a record failed: every record's
// outcome, and the error of the request as a whole (retriable always said).
type produceErrorReply struct {
	Offsets []client.ProduceOffset `json:"offsets"`
	client.ErrorBody
}

// outcome is what became of record i of the request.
func (st *produceState) outcome(i int, acks replication.Acks) client.ProduceOffset {
	pl := st.place[i]
	b := st.batches[pl.batch]
	o := client.ProduceOffset{Partition: b.partition}
	switch {
	case b.err != nil:
		o.Offset, o.Timestamp, o.ErrorCode, o.Message = -1, -1, b.err.Code, b.err.Message
	case b.remote != nil:
		o = b.remote[pl.delta]
	case acks == replication.AcksNone:
		o.Offset, o.Timestamp = -1, pl.ts
	default:
		o.Offset, o.Timestamp = b.res.BaseOffset+int64(pl.delta), pl.ts
		if b.logAppend && b.res.MaxTimestamp != pl.ts {
			o.Timestamp = b.res.MaxTimestamp
		}
	}
	return o
}

// writeProduceReply answers the offsets of the records in request order; if
// any failed, the status is the first error's and each entry says what
// became of its record, so the caller knows exactly what was written.
func writeProduceReply(c echo.Context, st *produceState, acks replication.Acks) error {
	var first *Error
	for _, b := range st.batches {
		if first == nil && b.err != nil {
			first = b.err
		}
		for j := range b.remote {
			if first == nil && b.remote[j].ErrorCode != "" {
				first = Errorf(b.remote[j].ErrorCode, "%s", b.remote[j].Message)
			}
		}
	}
	if first != nil {
		out := make([]client.ProduceOffset, len(st.place))
		for i := range out {
			out[i] = st.outcome(i, acks)
		}
		return writeJSON(c, first.Status, produceErrorReply{Offsets: out, ErrorBody: client.ErrorBody{
			ErrorCode: first.Code, Message: clipInput(first.Message, maxMessageBytes), Retriable: first.Retriable}})
	}
	// The common reply, written by hand: encoding/json showed up in profiles.
	buf := make([]byte, 0, 16+len(st.place)*64) // {"partition":N,"offset":N,"timestamp":13 digits}
	buf = append(buf, `{"offsets":[`...)
	for i := range st.place {
		o := st.outcome(i, acks)
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"partition":`...)
		buf = strconv.AppendInt(buf, int64(o.Partition), 10)
		buf = append(buf, `,"offset":`...)
		buf = strconv.AppendInt(buf, o.Offset, 10)
		buf = append(buf, `,"timestamp":`...)
		buf = strconv.AppendInt(buf, o.Timestamp, 10)
		buf = append(buf, '}')
	}
	buf = append(buf, "]}\n"...)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, buf)
}

// produceRemote sends one partition's records to its leader (byte-exact:
// keys and values as base64, header values that are not UTF-8 too) and
// returns their outcomes in order. ctx is the request's: the forwarder
// gives the call its deadline, from timeout (the leader's timeout_ms).
func (s *Server) produceRemote(ctx context.Context, ne *NotHereError, topic string, p int32, batch logstore.Batch,
	acks replication.Acks, timeout time.Duration) ([]client.ProduceOffset, error) {
	if ne.Addr == "" {
		return nil, Errorf(client.CodeLeaderNotAvailable, "%s has no known address", ne.What)
	}
	recs, err := s.b.Codecs().Records(batch)
	if err != nil {
		return nil, fmt.Errorf("forward produce: decode the batch built for %s-%d: %w", topic, p, err)
	}
	body := []byte(`{"records":[`)
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"timestamp":`...)
		body = strconv.AppendInt(body, r.Timestamp, 10)
		if r.Key != nil {
			body = append(body, `,"key_b64":"`...)
			body = base64.StdEncoding.AppendEncode(body, r.Key)
			body = append(body, '"')
		}
		if r.Value != nil {
			body = append(body, `,"value_b64":"`...)
			body = base64.StdEncoding.AppendEncode(body, r.Value)
			body = append(body, '"')
		}
		body = append(appendReplyHeaders(body, r.Headers), '}') // bytes that are not UTF-8 as headers_b64
	}
	body = append(body, "]}"...)
	acksText := map[replication.Acks]string{replication.AcksAll: "all", replication.AcksLeader: "1", replication.AcksNone: "0"}[acks]
	target := fmt.Sprintf("http://%s/v1/topics/%s/partitions/%d/records?acks=%s&timeout_ms=%d", ne.Addr, url.PathEscape(topic), p, acksText, timeout.Milliseconds())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("forward produce: %w", err)
	}
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	resp, err := s.fwd.do(req, s.servedBy, timeout)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, Errorf(client.CodeLeaderNotAvailable, "%s is unreachable: %v", ne.Error(), err)
		}
		return nil, Errorf(client.CodeRequestTimedOut, "%s did not answer; the outcome is unknown: %v", ne.Error(), err)
	}
	defer resp.Body.Close()
	var pr client.ProduceResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&pr); err != nil {
		return nil, Errorf(client.CodeRequestTimedOut, "%s sent an unreadable reply (%d); the outcome is unknown", ne.Error(), resp.StatusCode)
	}
	if len(pr.Offsets) != len(recs) {
		if pr.ErrorCode != "" {
			return nil, Errorf(pr.ErrorCode, "%s", pr.Message)
		}
		return nil, Errorf(client.CodeRequestTimedOut, "%s answered %d offsets for %d records", ne.Error(), len(pr.Offsets), len(recs))
	}
	return pr.Offsets, nil
}
