package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

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
	recs, err := s.parseRecords(c, body)
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
	parts := make(map[int32]Partition, len(groups))
	for _, p := range order {
		part, err := s.b.Partition(topic, p)
		if err != nil {
			return err
		}
		parts[p] = part
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
		res, err := s.appendBatch(ctx, parts[p], batchRecs, acks)
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
	resp := client.ProduceResponse{Offsets: out}
	status := http.StatusOK
	if firstErr != nil {
		status = firstErr.Status
		resp.ErrorCode, resp.Message, resp.Retriable = firstErr.Code, firstErr.Message, firstErr.Retriable
	}
	return writeJSON(c, status, resp)
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

// parseRecords reads the body per its content type.
func (s *Server) parseRecords(c echo.Context, body []byte) ([]inRecord, error) {
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
		var req struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := decodeStrict(body, &req); err != nil {
			return nil, err
		}
		if req.Records == nil {
			return nil, badRequest("records: missing; expected {\"records\": [...]}")
		}
		out := make([]inRecord, len(req.Records))
		for i, raw := range req.Records {
			if err := decodeRecord(raw, &out[i], fmt.Sprintf("records[%d]", i)); err != nil {
				return nil, err
			}
		}
		return out, nil
	case "application/x-ndjson", "application/jsonl", "application/json-seq":
		var out []inRecord
		for i, line := range splitLines(body) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var r inRecord
			if err := decodeRecord(line, &r, fmt.Sprintf("line %d", i+1)); err != nil {
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

// decodeRecord decodes one record object of a JSON or NDJSON body.
func decodeRecord(raw []byte, out *inRecord, where string) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return badRequest("%s: must be a JSON object like {\"value\": ...}", where)
	}
	var pr client.ProduceRecord
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pr); err != nil {
		e := jsonError(err)
		e.Message = where + ": " + e.Message
		return e
	}
	if dec.More() {
		return badRequest("%s: unexpected data after the record object", where)
	}
	var err error
	if out.rec.Key, err = recordBytes(pr.Key, pr.KeyB64, where, "key"); err != nil {
		return err
	}
	if out.rec.Value, err = recordBytes(pr.Value, pr.ValueB64, where, "value"); err != nil {
		return err
	}
	out.partition = -1
	if pr.Partition != nil {
		if *pr.Partition < 0 {
			return badRequest("%s.partition: must be >= 0, got %d", where, *pr.Partition)
		}
		out.partition = *pr.Partition
	}
	out.rec.Timestamp = -1
	if pr.Timestamp != nil {
		if *pr.Timestamp < 0 {
			return badRequest("%s.timestamp: must be milliseconds since the epoch (>= 0), got %d", where, *pr.Timestamp)
		}
		out.rec.Timestamp = *pr.Timestamp
	}
	if len(pr.Headers) > 0 {
		out.rec.Headers = make([]logstore.Header, 0, len(pr.Headers))
		for k, v := range pr.Headers {
			out.rec.Headers = append(out.rec.Headers, logstore.Header{Key: k, Value: []byte(v)})
		}
		sortHeaders(out.rec.Headers)
	}
	return nil
}

// recordBytes turns "key"/"key_b64" (or value) into bytes: a JSON string is its
// UTF-8, null or absent is nil, any other JSON is its compact text.
func recordBytes(raw json.RawMessage, b64 *string, where, field string) ([]byte, error) {
	if raw != nil && b64 != nil {
		return nil, badRequest("%s: give %s or %s_b64, not both", where, field, field)
	}
	if b64 != nil {
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, badRequest("%s.%s_b64: not valid base64: %v", where, field, err)
		}
		return b, nil
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("%s.%s: %v", where, field, err)
		}
		return []byte(s), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, badRequest("%s.%s: %v", where, field, err)
	}
	return buf.Bytes(), nil
}

func sortHeaders(h []logstore.Header) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].Key < h[j-1].Key; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}
