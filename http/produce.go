package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/valyala/fastjson"

	"weir/client"
	"weir/logstore"
	"weir/replication"
)

// inRecord is one record of a produce request, checked and decoded.
type inRecord struct {
	rec       logstore.Record
	partition int32 // -1: not given
}

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
	fixed := int32(-1)
	if ps := c.Param("partition"); ps != "" {
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			return badRequest("partition %q must be a non-negative integer", ps)
		}
		fixed = int32(p)
	}
	acks, err := replication.ParseAcks(c.QueryParam("acks"))
	if err != nil {
		return badRequest("query parameter acks: %v", err)
	}
	timeout := s.opts.RequestTimeout
	if v := c.QueryParam("timeout_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 1 || ms > 3_600_000 {
			return badRequest("query parameter timeout_ms=%q must be between 1 and 3600000", v)
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	parser := s.parsers.Get()
	defer s.parsers.Put(parser) // after the batches are encoded: records point into it
	recs, err := s.parseRecords(c, body, parser)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return badRequest("records: the request holds no record")
	}
	now := time.Now().UnixMilli()
	for i := range recs {
		r := &recs[i]
		if size := recordSize(&r.rec); size > info.MaxMessageBytes {
			return Errorf(client.CodeMessageTooLarge, "records[%d]: %d bytes is more than max.message.bytes (%d)", i, size, info.MaxMessageBytes)
		}
		if fixed >= 0 {
			if r.partition >= 0 && r.partition != fixed {
				return badRequest("records[%d].partition: %d differs from the partition %d in the path", i, r.partition, fixed)
			}
			r.partition = fixed
		}
		if r.partition >= int32(info.Partitions) {
			return Errorf(client.CodeUnknownTopicOrPartition, "records[%d].partition: topic %q has no partition %d (it has %d)", i, topic, r.partition, info.Partitions)
		}
		if r.rec.Timestamp < 0 {
			r.rec.Timestamp = now
		}
	}
	// Partition the records, keyless ones all to one partition per request.
	sticky := int32(-1)
	groups := map[int32][]int{} // partition -> indexes into recs, in request order
	order := []int32{}
	for i := range recs {
		r := &recs[i]
		p := r.partition
		if p < 0 {
			if r.rec.Key != nil {
				p = KeyPartition(r.rec.Key, info.Partitions)
			} else {
				if sticky < 0 {
					sticky = s.sticky.next(info.Partitions)
				}
				p = sticky
			}
			r.partition = p
		}
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], i)
	}
	// Resolve every partition before writing any, so a missing leader writes nothing.
	// Partitions led elsewhere are sent to their leaders, split from this request.
	parts := make(map[int32]Partition, len(groups))
	remote := map[int32]*NotHereError{}
	for _, p := range order {
		part, err := s.b.Partition(topic, p)
		var ne *NotHereError
		switch {
		case errors.As(err, &ne):
			if len(order) == 1 { // the whole body goes as it is, to that partition
				fwd := *ne
				fwd.Path = fmt.Sprintf("/v1/topics/%s/partitions/%d/records", url.PathEscape(topic), p)
				return &fwd
			}
			if c.Request().Header.Get(ForwardedHeader) != "" {
				return Errorf(client.CodeNotLeaderOrFollower, "%s; this node's metadata may be behind, retry", ne.Error())
			}
			remote[p] = ne
		case err != nil:
			return err
		default:
			parts[p] = part
		}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
	defer cancel()
	out := make([]client.ProduceOffset, len(recs))
	var firstErr *Error
	var mu sync.Mutex
	appendGroup := func(p int32) {
		idx := groups[p]
		batchRecs := make([]logstore.Record, len(idx))
		for j, i := range idx {
			batchRecs[j] = recs[i].rec
		}
		if ne := remote[p]; ne != nil {
			offs, err := s.produceRemote(ctx, ne, topic, p, batchRecs, acks, timeout)
			mu.Lock()
			defer mu.Unlock()
			for j, i := range idx {
				if err != nil {
					ae := asAPIError(err)
					out[i] = client.ProduceOffset{Partition: p, Offset: -1, Timestamp: -1, ErrorCode: ae.Code, Message: ae.Message}
					if firstErr == nil {
						firstErr = ae
					}
					continue
				}
				out[i] = offs[j]
				if offs[j].ErrorCode != "" && firstErr == nil {
					firstErr = Errorf(offs[j].ErrorCode, "%s", offs[j].Message)
				}
			}
			return
		}
		res, err := s.appendBatch(ctx, parts[p], batchRecs, acks)
		if err != nil && res.AppendTime != 0 {
			// Appended, then not committed (leadership lost, ISR too small, time
			// up): the records may yet be committed, so the outcome is unknown.
			err = Errorf(client.CodeRequestTimedOut, "offsets %d-%d were appended but not committed in time (%v); the outcome is unknown",
				res.BaseOffset, res.LastOffset, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for j, i := range idx {
			o := &out[i]
			o.Partition = p
			switch {
			case err != nil:
				ae := asAPIError(err)
				o.Offset, o.Timestamp, o.ErrorCode, o.Message = -1, -1, ae.Code, ae.Message
				if firstErr == nil {
					firstErr = ae
				}
			case acks == replication.AcksNone:
				o.Offset, o.Timestamp = -1, batchRecs[j].Timestamp
			default:
				o.Offset = res.BaseOffset + int64(j)
				o.Timestamp = batchRecs[j].Timestamp
				if res.MaxTimestamp != batchRecs[j].Timestamp && parts[p].Log().Config().MessageTimestampType == logstore.LogAppendTime {
					o.Timestamp = res.MaxTimestamp
				}
			}
		}
	}
	if len(order) == 1 {
		appendGroup(order[0])
	} else {
		var wg sync.WaitGroup
		for _, p := range order {
			wg.Add(1)
			go func() {
				defer wg.Done()
				appendGroup(p)
			}()
		}
		wg.Wait()
	}
	if s.metrics != nil {
		n := 0
		for _, r := range recs {
			n += len(r.rec.Key) + len(r.rec.Value)
		}
		s.metrics.recordsIn(topic, len(recs), n)
	}
	if firstErr != nil {
		return writeJSON(c, firstErr.Status, client.ProduceResponse{Offsets: out, ErrorCode: firstErr.Code,
			Message: firstErr.Message, Retriable: firstErr.Retriable})
	}
	// The common reply, written by hand: encoding/json showed up in profiles.
	buf := make([]byte, 0, 16+len(out)*64)
	buf = append(buf, `{"offsets":[`...)
	for i, o := range out {
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

// produceRemote sends one partition's records to its leader (byte-exact, as
// base64) and returns their outcomes in order.
func (s *Server) produceRemote(ctx context.Context, ne *NotHereError, topic string, p int32, recs []logstore.Record,
	acks replication.Acks, timeout time.Duration) ([]client.ProduceOffset, error) {
	if ne.Addr == "" {
		return nil, Errorf(client.CodeLeaderNotAvailable, "%s has no known address", ne.What)
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
		body = append(appendHeadersField(body, r.Headers), '}')
	}
	body = append(body, "]}"...)
	acksText := map[replication.Acks]string{replication.AcksAll: "all", replication.AcksLeader: "1", replication.AcksNone: "0"}[acks]
	target := fmt.Sprintf("http://%s/v1/topics/%s/partitions/%d/records?acks=%s&timeout_ms=%d", ne.Addr, url.PathEscape(topic), p, acksText, timeout.Milliseconds())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("forward produce: %w", err)
	}
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	req.Header.Set(ForwardedHeader, s.servedBy)
	resp, err := s.fwd.client.Do(req)
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

// appendBatch encodes the records as one batch and appends it to the partition.
func (s *Server) appendBatch(ctx context.Context, p Partition, recs []logstore.Record, acks replication.Acks) (logstore.AppendResult, error) {
	batch, err := s.b.Codecs().EncodeBatch(nil, recs, logstore.BatchOptions{})
	if err != nil {
		return logstore.AppendResult{}, err
	}
	return p.Append(ctx, batch, acks)
}

// recordSize approximates the record's stored size the way max.message.bytes counts it.
func recordSize(r *logstore.Record) int {
	n := len(r.Key) + len(r.Value) + 24
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// parseRecords reads the body per its content type. Keys and values may point
// into p's memory: the caller keeps p until the records are encoded.
func (s *Server) parseRecords(c echo.Context, body []byte, p *fastjson.Parser) ([]inRecord, error) {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	mt := "application/json"
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, Errorf(client.CodeUnsupportedMediaType, "Content-Type %q is not a media type", ct)
		}
	}
	query := c.QueryParams()
	var key []byte
	if query.Has("key") {
		key = []byte(query.Get("key"))
	}
	switch mt {
	case "application/json":
		return parseJSONRecords(body, p)
	case "application/x-ndjson", "application/jsonl", "application/json-seq":
		var out []inRecord
		// One parser per line would copy; fastjson values die with the next
		// parse, so NDJSON lines are parsed into a cache of parsers.
		var pc fastjson.ParserPool
		for i, line := range splitLines(body) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			lp := pc.Get() // never returned: the values must outlive the loop
			v, err := lp.ParseBytes(line)
			if err != nil {
				return nil, badRequest("line %d: malformed JSON: %v", i+1, err)
			}
			r, err := recordFromValue(v, fmt.Sprintf("line %d", i+1))
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	case "text/plain":
		lines := splitLines(body)
		out := make([]inRecord, 0, len(lines))
		for _, line := range lines {
			out = append(out, inRecord{rec: logstore.Record{Key: key, Value: line, Timestamp: -1}, partition: -1})
		}
		return out, nil
	case "application/octet-stream":
		return []inRecord{{rec: logstore.Record{Key: key, Value: body, Timestamp: -1}, partition: -1}}, nil
	case "application/x-www-form-urlencoded":
		return nil, Errorf(client.CodeUnsupportedMediaType,
			"Content-Type %s is not a record body; send -H 'Content-Type: application/json' (or x-ndjson, text/plain, octet-stream)", mt)
	}
	return nil, Errorf(client.CodeUnsupportedMediaType,
		"Content-Type %s is not supported; use application/json, application/x-ndjson, text/plain or application/octet-stream", mt)
}

// parseJSONRecords reads {"records":[...]} in one pass (fastjson: the produce
// hot path cannot afford encoding/json's reflection and double scanning).
func parseJSONRecords(body []byte, p *fastjson.Parser) ([]inRecord, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("the request body is empty; expected {\"records\": [...]}")
	}
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, badRequest("malformed JSON: %v", err)
	}
	obj, err := v.Object()
	if err != nil {
		return nil, badRequest("the body must be a JSON object {\"records\": [...]}, got %s", v.Type())
	}
	var recs *fastjson.Value
	var bad string
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if string(k) == "records" {
			recs = v
		} else if bad == "" {
			bad = string(k)
		}
	})
	if bad != "" {
		return nil, badRequest("unknown field %q (expected only \"records\")", bad)
	}
	if recs == nil {
		return nil, badRequest("records: missing; expected {\"records\": [...]}")
	}
	arr, err := recs.Array()
	if err != nil {
		return nil, badRequest("records: expected an array, got %s", recs.Type())
	}
	out := make([]inRecord, len(arr))
	for i, rv := range arr {
		if out[i], err = recordFromValue(rv, "records["+strconv.Itoa(i)+"]"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recordFromValue checks one record object and decodes it.
func recordFromValue(v *fastjson.Value, where string) (inRecord, error) {
	out := inRecord{partition: -1, rec: logstore.Record{Timestamp: -1}}
	obj, err := v.Object()
	if err != nil {
		return out, badRequest("%s: must be a JSON object like {\"value\": ...}, got %s", where, v.Type())
	}
	var key, keyB64, value, valueB64, headers *fastjson.Value
	var ferr error
	obj.Visit(func(k []byte, fv *fastjson.Value) {
		if ferr != nil {
			return
		}
		switch string(k) {
		case "key":
			key = fv
		case "key_b64":
			keyB64 = fv
		case "value":
			value = fv
		case "value_b64":
			valueB64 = fv
		case "headers":
			headers = fv
		case "partition":
			n, err := fv.Int()
			if err != nil || fv.Type() != fastjson.TypeNumber {
				ferr = badRequest("%s.partition: expected an integer, got %s", where, fv)
			} else if n < 0 || n > math.MaxInt32 {
				ferr = badRequest("%s.partition: must be >= 0, got %d", where, n)
			} else {
				out.partition = int32(n)
			}
		case "timestamp":
			n, err := fv.Int64()
			if err != nil || fv.Type() != fastjson.TypeNumber {
				ferr = badRequest("%s.timestamp: expected milliseconds since the epoch, got %s", where, fv)
			} else if n < 0 {
				ferr = badRequest("%s.timestamp: must be milliseconds since the epoch (>= 0), got %d", where, n)
			} else {
				out.rec.Timestamp = n
			}
		default:
			ferr = badRequest("%s: unknown field %q (expected key, key_b64, value, value_b64, headers, partition, timestamp)", where, k)
		}
	})
	if ferr != nil {
		return out, ferr
	}
	if out.rec.Key, err = recordBytes(key, keyB64, where, "key"); err != nil {
		return out, err
	}
	if out.rec.Value, err = recordBytes(value, valueB64, where, "value"); err != nil {
		return out, err
	}
	if headers != nil && headers.Type() != fastjson.TypeNull {
		hobj, err := headers.Object()
		if err != nil {
			return out, badRequest("%s.headers: expected an object of strings, got %s", where, headers.Type())
		}
		hobj.Visit(func(k []byte, hv *fastjson.Value) {
			if ferr != nil {
				return
			}
			b, err := hv.StringBytes()
			if err != nil {
				ferr = badRequest("%s.headers[%q]: expected a string, got %s", where, k, hv.Type())
				return
			}
			out.rec.Headers = append(out.rec.Headers, logstore.Header{Key: string(k), Value: b})
		})
		if ferr != nil {
			return out, ferr
		}
		sortHeaders(out.rec.Headers)
	}
	return out, nil
}

// splitLines splits on \n (dropping a trailing \r and the empty piece after a final newline).
func splitLines(body []byte) [][]byte {
	if len(body) == 0 {
		return nil
	}
	lines := bytes.Split(body, []byte{'\n'})
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = bytes.TrimSuffix(l, []byte{'\r'})
	}
	return lines
}

// recordBytes turns "key"/"key_b64" (or value) into bytes: a JSON string is its
// UTF-8, null or absent is nil, any other JSON is its compact text.
func recordBytes(v, b64 *fastjson.Value, where, field string) ([]byte, error) {
	if v != nil && b64 != nil {
		return nil, badRequest("%s: give %s or %s_b64, not both", where, field, field)
	}
	if b64 != nil {
		if b64.Type() == fastjson.TypeNull {
			return nil, nil
		}
		s, err := b64.StringBytes()
		if err != nil {
			return nil, badRequest("%s.%s_b64: expected a base64 string, got %s", where, field, b64.Type())
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(out, s)
		if err != nil {
			return nil, badRequest("%s.%s_b64: not valid base64: %v", where, field, err)
		}
		return out[:n], nil
	}
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	if v.Type() == fastjson.TypeString {
		b, _ := v.StringBytes()
		if b == nil {
			b = []byte{}
		}
		return b, nil
	}
	return v.MarshalTo(nil), nil
}

func sortHeaders(h []logstore.Header) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].Key < h[j-1].Key; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}
