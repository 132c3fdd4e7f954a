package httpapi

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"mime"
	"slices"
	"strconv"
	"strings"

	"weir/client"
	"weir/logstore"
)

// Reading a produce body: each record is parsed and encoded at once into the
// batch of its partition, so a request costs its body, its batches and 16
// bytes a record, and a count limit stops a body of millions of tiny records
// before it costs more (4 MB of newlines used to take 1.5 GB as records,
// slices and replies).

// DefaultMaxRequestRecords is the default max_request_records. Kafka has no
// such limit, but its batch format bounds it: a record takes at least 7 bytes
// in a batch, so a 1 MiB max.message.bytes batch holds about 150,000 empty
// ones. 100,000 is of that order, the most one consume or poll returns, and
// keeps a produce's bookkeeping and reply (about 100 bytes a record) near 10 MB.
const DefaultMaxRequestRecords = 100_000

// maxPooledProduce: produce states holding more memory are not pooled.
const maxPooledProduce = 4 << 20

// recordPlace is where one record of the request went, in request order.
type recordPlace struct {
	batch int32 // index into produceState.batches
	delta int32 // offset delta in that batch
	ts    int64 // the record's timestamp (the reply's, unless LogAppendTime)
}

// partBatch is one partition's share of a produce, and its outcome.
type partBatch struct {
	partition int32
	b         logstore.BatchBuilder
	res       logstore.AppendResult
	remote    []client.ProduceOffset // outcomes from another node's leader
	err       *Error
	logAppend bool // the partition stamps its own time (LogAppendTime)
}

// produceState is one produce request: its records, encoded per partition
// as they are parsed. It is pooled with its memory between requests.
type produceState struct {
	info       TopicInfo
	fixed      int32  // the path's partition, or -1
	key        []byte // ?key=, for text and octet bodies
	now        int64  // the timestamp of records without one
	maxRecords int
	label      string       // "records[%d]" or "line %d": names a record in messages
	sticky     func() int32 // the partition of keyless records (asked once per request)
	stickyP    int32

	batches []*partBatch // in order of first use
	index   map[int32]int32
	place   []recordPlace
	bytes   int // of keys and values, for metrics

	// scratch holds one record's decoded strings while it is parsed.
	scratch []byte
	headers []logstore.Header
	spare   []*partBatch
}

func (st *produceState) reset(info TopicInfo, fixed int32, key []byte, now int64, maxRecords int, sticky func() int32) {
	for _, b := range st.batches {
		b.b.Reset()
		*b = partBatch{b: b.b}
		st.spare = append(st.spare, b)
	}
	*st = produceState{info: info, fixed: fixed, key: key, now: now, maxRecords: maxRecords, sticky: sticky, stickyP: -1,
		batches: st.batches[:0], index: st.index, place: st.place[:0], scratch: st.scratch[:0], headers: st.headers[:0], spare: st.spare}
	if st.index == nil {
		st.index = make(map[int32]int32)
	}
	clear(st.index)
}

// memory is what the state holds, to decide whether to pool it.
func (st *produceState) memory() int {
	n := cap(st.place)*16 + cap(st.scratch) + cap(st.headers)*40
	for _, b := range st.spare {
		n += b.b.Cap()
	}
	for _, b := range st.batches {
		n += b.b.Cap()
	}
	return n
}

// where names record n in a message.
func (st *produceState) where(n int) string { return fmt.Sprintf(st.label, n) }

// add places one parsed record (partition -1: not given) into its partition's batch.
func (st *produceState) add(rec *logstore.Record, partition int32, n int) error {
	if len(st.place) >= st.maxRecords {
		return Errorf(client.CodeRecordListTooLarge,
			"%s: the request holds more than max_request_records (%d) records; send them in several requests", st.where(n), st.maxRecords)
	}
	if size := recordSize(rec); size > st.info.MaxMessageBytes {
		return Errorf(client.CodeMessageTooLarge, "%s: %d bytes is more than max.message.bytes (%d)", st.where(n), size, st.info.MaxMessageBytes)
	}
	if st.fixed >= 0 {
		if partition >= 0 && partition != st.fixed {
			return badRequest("%s.partition: %d differs from the partition %d in the path", st.where(n), partition, st.fixed)
		}
		partition = st.fixed
	}
	if partition >= int32(st.info.Partitions) {
		return Errorf(client.CodeUnknownTopicOrPartition, "%s.partition: topic %s has no partition %d (it has %d)",
			st.where(n), quoteInput(st.info.Name), partition, st.info.Partitions)
	}
	if rec.Timestamp < 0 {
		rec.Timestamp = st.now
	}
	if partition < 0 {
		if rec.Key != nil {
			partition = KeyPartition(rec.Key, st.info.Partitions)
		} else {
			if st.stickyP < 0 {
				st.stickyP = st.sticky()
			}
			partition = st.stickyP
		}
	}
	bi, ok := st.index[partition]
	if !ok {
		var b *partBatch
		if k := len(st.spare); k > 0 {
			b, st.spare = st.spare[k-1], st.spare[:k-1]
		} else {
			b = &partBatch{}
		}
		b.partition = partition
		bi = int32(len(st.batches))
		st.batches = append(st.batches, b)
		st.index[partition] = bi
	}
	b := st.batches[bi]
	b.b.Add(rec)
	st.place = append(st.place, recordPlace{batch: bi, delta: int32(b.b.Len() - 1), ts: rec.Timestamp})
	st.bytes += len(rec.Key) + len(rec.Value)
	return nil
}

// recordSize approximates the record's stored size the way max.message.bytes counts it.
func recordSize(r *logstore.Record) int {
	n := len(r.Key) + len(r.Value) + 24
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// bodyMediaType is the record format a Content-Type names (JSON when none).
func bodyMediaType(ct string) (string, error) {
	if ct == "" {
		return "application/json", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", Errorf(client.CodeUnsupportedMediaType, "Content-Type %s is not a media type", quoteInput(ct))
	}
	switch mt {
	case "application/json", "application/x-ndjson", "application/jsonl", "application/json-seq", "text/plain", "application/octet-stream":
		return mt, nil
	case "application/x-www-form-urlencoded", "multipart/form-data":
		return "", Errorf(client.CodeUnsupportedMediaType,
			"Content-Type %s is not a record body; send -H 'Content-Type: application/json' (or x-ndjson, text/plain, octet-stream)", mt)
	}
	return "", Errorf(client.CodeUnsupportedMediaType,
		"Content-Type %s is not supported; use application/json, application/x-ndjson, text/plain or application/octet-stream", quoteInput(mt))
}

// parse reads the body in format mt into the state's batches.
func (st *produceState) parse(body []byte, mt string) error {
	switch mt {
	case "application/json":
		st.label = "records[%d]"
		return st.parseJSON(body)
	case "application/x-ndjson", "application/jsonl", "application/json-seq":
		st.label = "line %d"
		return st.parseNDJSON(body)
	case "text/plain":
		st.label = "line %d"
		n := 0
		return eachLine(body, func(line []byte, _ int) error {
			n++
			rec := logstore.Record{Key: st.key, Value: line, Timestamp: -1}
			return st.add(&rec, -1, n)
		})
	case "application/octet-stream":
		st.label = "record %d"
		value := body
		if value == nil {
			value = []byte{} // an empty body is an empty value; a null is asked for in JSON
		}
		rec := logstore.Record{Key: st.key, Value: value, Timestamp: -1}
		return st.add(&rec, -1, 1)
	}
	return Errorf(client.CodeUnsupportedMediaType, "Content-Type %s is not supported", quoteInput(mt))
}

// eachLine calls fn with each line of body and its offset: lines end at \n
// (a \r before it is dropped); a final newline ends the last line.
func eachLine(body []byte, fn func(line []byte, at int) error) error {
	for at := 0; at < len(body); {
		end := bytes.IndexByte(body[at:], '\n')
		next := at + end + 1
		if end < 0 {
			end, next = len(body)-at, len(body)
		}
		line := body[at : at+end]
		if err := fn(bytes.TrimSuffix(line, []byte{'\r'}), at); err != nil {
			return err
		}
		at = next
	}
	return nil
}

// parseJSON reads {"records": [...]}.
func (st *produceState) parseJSON(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest(`the request body is empty; expected {"records": [...]}`)
	}
	r := &jsonReader{data: body}
	if err := r.valueAhead(); err != nil {
		return asBadRequest(err)
	}
	if r.next() != '{' {
		return badRequest(`the body must be a JSON object {"records": [...]}, got %s`, r.kind())
	}
	found := false
	err := r.object(0, func(key []byte, _ int) error {
		if string(key) != "records" {
			return badRequest(`unknown field %s (expected only "records")`, quoteInput(string(key)))
		}
		found = true
		if err := r.valueAhead(); err != nil {
			return err
		}
		if r.next() != '[' {
			return badRequest("records: expected an array, got %s", r.kind())
		}
		return r.array(1, func(i int) error { return st.parseRecord(r, 2, i) })
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return asBadRequest(err)
	}
	if !found {
		return badRequest(`records: missing; expected {"records": [...]}`)
	}
	return nil
}

// parseNDJSON reads one record object per line; blank lines are skipped.
func (st *produceState) parseNDJSON(body []byte) error {
	n := 0
	return eachLine(body, func(line []byte, at int) error {
		n++
		line = bytes.TrimPrefix(line, []byte{0x1e}) // json-seq's record separator
		r := &jsonReader{data: line, base: at}
		if r.atEnd() {
			return nil // a blank line
		}
		err := st.parseRecord(r, 0, n)
		if err == nil {
			err = r.end()
		}
		if se, ok := err.(*syntaxError); ok {
			return badRequest("line %d: %v", n, se)
		}
		return err
	})
}

// span is a value's place in the body.
type span struct {
	start, end int
	given      bool
}

// parseRecord reads one record object at r and adds it; n numbers it for messages.
func (st *produceState) parseRecord(r *jsonReader, depth, n int) error {
	if err := r.valueAhead(); err != nil {
		return err
	}
	if r.next() != '{' {
		return badRequest(`%s: must be a JSON object like {"value": ...}, got %s`, st.where(n), r.kind())
	}
	st.scratch, st.headers = st.scratch[:0], st.headers[:0]
	var key, keyB64, value, valueB64 span
	rec := logstore.Record{Timestamp: -1}
	partition := int32(-1)
	valueSpan := func(dst *span) error {
		start := r.pos
		if err := r.skip(depth + 1); err != nil {
			return err
		}
		*dst = span{start, r.pos, true}
		return nil
	}
	err := r.object(depth, func(k []byte, _ int) error {
		switch string(k) {
		case "key":
			return valueSpan(&key)
		case "key_b64":
			return valueSpan(&keyB64)
		case "value":
			return valueSpan(&value)
		case "value_b64":
			return valueSpan(&valueB64)
		case "headers":
			return st.parseHeaders(r, depth+1, n, false)
		case "headers_b64":
			return st.parseHeaders(r, depth+1, n, true)
		case "partition":
			p, err := st.integer(r, n, "partition", math.MaxInt32)
			partition = int32(p)
			return err
		case "timestamp":
			ts, err := st.integer(r, n, "timestamp", math.MaxInt64)
			rec.Timestamp = ts
			return err
		}
		return badRequest("%s: unknown field %s (expected key, key_b64, value, value_b64, headers, headers_b64, partition, timestamp)",
			st.where(n), quoteInput(string(k)))
	})
	if err != nil {
		return err
	}
	if rec.Key, err = st.recordBytes(r, key, keyB64, n, "key"); err != nil {
		return err
	}
	if rec.Value, err = st.recordBytes(r, value, valueB64, n, "value"); err != nil {
		return err
	}
	if len(st.headers) > 0 {
		slices.SortStableFunc(st.headers, func(a, b logstore.Header) int { return strings.Compare(a.Key, b.Key) })
		for i := 1; i < len(st.headers); i++ {
			if st.headers[i].Key == st.headers[i-1].Key { // one in headers, one in headers_b64
				return badRequest("%s: header %s is given twice (in headers and headers_b64)", st.where(n), quoteInput(st.headers[i].Key))
			}
		}
		rec.Headers = st.headers
	}
	return st.add(&rec, partition, n)
}

// integer reads a field that must be an integer in [0, max].
func (st *produceState) integer(r *jsonReader, n int, field string, max int64) (int64, error) {
	what := "an integer"
	if field == "timestamp" {
		what = "milliseconds since the epoch"
	}
	if err := r.valueAhead(); err != nil {
		return 0, err
	}
	if c := r.next(); c != '-' && (c < '0' || c > '9') {
		return 0, badRequest("%s.%s: expected %s, got %s", st.where(n), field, what, r.kind())
	}
	text, integer, err := r.number()
	if err != nil {
		return 0, err
	}
	if !integer {
		return 0, badRequest("%s.%s: expected %s, got %s", st.where(n), field, what, clipInput(string(text), maxEchoBytes))
	}
	v, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil || v < 0 || v > max {
		return 0, badRequest("%s.%s: must be between 0 and %d, got %s", st.where(n), field, max, clipInput(string(text), maxEchoBytes))
	}
	return v, nil
}

// parseHeaders reads a headers object of strings (of base64 with b64, for
// values that are not UTF-8, as replies give them) into st.headers (the
// record's size is checked as they come: a record of a million headers is
// refused before it costs their memory).
func (st *produceState) parseHeaders(r *jsonReader, depth, n int, b64 bool) error {
	field := "headers"
	if b64 {
		field = "headers_b64"
	}
	if null, err := r.isNull(); err != nil || null {
		return err
	}
	if err := r.valueAhead(); err != nil {
		return err
	}
	if r.next() != '{' {
		return badRequest("%s.%s: expected an object of strings, got %s", st.where(n), field, r.kind())
	}
	size := 24
	return r.object(depth, func(k []byte, _ int) error {
		if err := r.valueAhead(); err != nil {
			return err
		}
		if r.next() != '"' {
			return badRequest("%s.%s[%s]: expected a string, got %s", st.where(n), field, quoteInput(string(k)), r.kind())
		}
		raw, esc, err := r.str()
		if err != nil {
			return err
		}
		v := raw
		if esc {
			start := len(st.scratch)
			st.scratch = appendUnescaped(st.scratch, raw)
			v = st.scratch[start:len(st.scratch):len(st.scratch)]
		}
		if b64 {
			if v, err = st.decodeB64(v); err != nil {
				return badRequest("%s.%s[%s]: not valid base64: %v", st.where(n), field, quoteInput(string(k)), err)
			}
		}
		if size += len(k) + len(v) + 4; size > st.info.MaxMessageBytes {
			return Errorf(client.CodeMessageTooLarge, "%s.%s: more than max.message.bytes (%d)", st.where(n), field, st.info.MaxMessageBytes)
		}
		st.headers = append(st.headers, logstore.Header{Key: string(k), Value: v})
		return nil
	})
}

// decodeB64 decodes standard base64 into st.scratch.
func (st *produceState) decodeB64(s []byte) ([]byte, error) {
	start := len(st.scratch)
	st.scratch = slices.Grow(st.scratch, base64.StdEncoding.DecodedLen(len(s)))
	out := st.scratch[start : start+base64.StdEncoding.DecodedLen(len(s))]
	k, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		st.scratch = st.scratch[:start]
		return nil, err
	}
	st.scratch = st.scratch[:start+k]
	return st.scratch[start : start+k : start+k], nil
}

// recordBytes turns "key"/"key_b64" (or value) into bytes: a JSON string is
// its UTF-8, null or absent is nil, any other JSON is its compact text.
func (st *produceState) recordBytes(r *jsonReader, v, b64 span, n int, field string) ([]byte, error) {
	if v.given && b64.given {
		return nil, badRequest("%s: give %s or %s_b64, not both", st.where(n), field, field)
	}
	if b64.given {
		raw := r.data[b64.start:b64.end]
		switch raw[0] {
		case 'n':
			return nil, nil
		case '"':
		default:
			return nil, badRequest("%s.%s_b64: expected a base64 string, got %s", st.where(n), field, (&jsonReader{data: raw}).kind())
		}
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') >= 0 {
			s = appendUnescaped(nil, s)
		}
		out, err := st.decodeB64(s)
		if err != nil {
			return nil, badRequest("%s.%s_b64: not valid base64: %v", st.where(n), field, err)
		}
		return out, nil
	}
	if !v.given {
		return nil, nil
	}
	raw := r.data[v.start:v.end]
	switch raw[0] {
	case 'n':
		return nil, nil
	case '"':
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') < 0 {
			return s, nil
		}
		start := len(st.scratch)
		st.scratch = appendUnescaped(st.scratch, s)
		return st.scratch[start:len(st.scratch):len(st.scratch)], nil
	}
	if isCompact(raw) {
		return raw, nil
	}
	start := len(st.scratch)
	st.scratch = appendCompact(st.scratch, raw)
	return st.scratch[start:len(st.scratch):len(st.scratch)], nil
}
