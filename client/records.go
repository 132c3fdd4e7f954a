package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"
)

// Acks values of a produce.
const (
	AcksAll  = "all"
	AcksOne  = "1"
	AcksNone = "0"
)

// StringValue is a record whose value is v, stored as its UTF-8 bytes (sent
// as value_b64 when v is not valid UTF-8, so that no byte is lost).
func StringValue(v string) ProduceRecord {
	var r ProduceRecord
	if utf8.ValidString(v) {
		r.Value = jsonString(v)
	} else {
		r.ValueB64 = b64([]byte(v))
	}
	return r
}

// BytesValue is a record whose value is v, sent as value_b64. An empty v is
// an empty value; a null value (a tombstone) is a record without Value.
func BytesValue(v []byte) ProduceRecord { return ProduceRecord{ValueB64: b64(v)} }

// JSONValue is a record whose value is the compact JSON text of v.
func JSONValue(v any) (ProduceRecord, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ProduceRecord{}, fmt.Errorf("encoding the record value: %w", err)
	}
	return ProduceRecord{Value: data}, nil
}

// WithKey returns r with the string key k (as key_b64 when not valid UTF-8).
func (r ProduceRecord) WithKey(k string) ProduceRecord {
	r.Key, r.KeyB64 = nil, nil
	if utf8.ValidString(k) {
		r.Key = jsonString(k)
	} else {
		r.KeyB64 = b64([]byte(k))
	}
	return r
}

// WithBytesKey returns r with the binary key k.
func (r ProduceRecord) WithBytesKey(k []byte) ProduceRecord {
	r.Key, r.KeyB64 = nil, b64(k)
	return r
}

func jsonString(s string) json.RawMessage {
	data, _ := json.Marshal(s) // a valid UTF-8 string always encodes
	return data
}

func b64(b []byte) *string {
	s := base64.StdEncoding.EncodeToString(b)
	return &s
}

// Produce writes records to topic (to one partition when partition is not
// nil) with a JSON body. acks is "all", "1" or "0" ("" = the server's
// default, all); timeout > 0 bounds the server-side wait (timeout_ms).
//
// The reply lists one outcome per record in request order. When some records
// failed the error is the reply's and the returned response, when the reply
// had one, still says exactly which records were written.
func (c *Client) Produce(ctx context.Context, topic string, partition *int32, records []ProduceRecord, acks string, timeout time.Duration) (*ProduceResponse, error) {
	if records == nil {
		records = []ProduceRecord{}
	}
	data, err := json.Marshal(ProduceRequest{Records: records})
	if err != nil {
		return nil, fmt.Errorf("produce to %q: encoding the records: %w", topic, err)
	}
	return c.produce(ctx, topic, partition, bytesSource(ContentTypeJSON, data), produceQuery(acks, timeout).Encode())
}

// ProduceRaw writes a body of another type: ContentTypeNDJSON (one record
// object per line), ContentTypeText (each line one value; query "key" sets
// a key) or ContentTypeOctet (the body is one value), or a ready-made JSON
// body. query carries acks, timeout_ms, key.
//
// A body that is a *bytes.Buffer or seekable (e.g. *bytes.Reader, a file)
// can be re-sent, so the call is retried like Produce; any other reader only
// fails over to the next server while it has not been read from.
func (c *Client) ProduceRaw(ctx context.Context, topic string, partition *int32, contentType string, body io.Reader, query url.Values) (*ProduceResponse, error) {
	if contentType == "" {
		contentType = ContentTypeJSON
	}
	src, err := readerSource(contentType, body)
	if err != nil {
		return nil, fmt.Errorf("produce to %q: %w", topic, err)
	}
	return c.produce(ctx, topic, partition, src, query.Encode())
}

func produceQuery(acks string, timeout time.Duration) url.Values {
	q := url.Values{}
	if acks != "" {
		q.Set("acks", acks)
	}
	if timeout > 0 {
		q.Set("timeout_ms", strconv.FormatInt(max(1, timeout.Milliseconds()), 10))
	}
	return q
}

func producePath(topic string, partition *int32) (string, error) {
	if err := checkTopic(topic); err != nil {
		return "", err
	}
	if partition != nil {
		return v1("topics", topic, "partitions", strconv.Itoa(int(*partition)), "records"), nil
	}
	return v1("topics", topic, "records"), nil
}

// produceCall is a produce: retried after an error reply only when the reply
// shows that no record was written.
func produceCall(path, rawQuery string, src *reqSource) *call {
	return &call{method: http.MethodPost, path: path, rawQuery: rawQuery, body: src, retryOK: nothingWritten}
}

func nothingWritten(e *APIError) bool {
	var pr ProduceResponse
	if json.Unmarshal(e.Body, &pr) != nil {
		return false // not the API's reply: unknown
	}
	for _, o := range pr.Offsets {
		if o.ErrorCode == "" {
			return false
		}
	}
	return true
}

func (c *Client) produce(ctx context.Context, topic string, partition *int32, src *reqSource, rawQuery string) (*ProduceResponse, error) {
	path, err := producePath(topic, partition)
	if err != nil {
		return nil, err
	}
	var out ProduceResponse
	if _, err := c.doJSON(ctx, produceCall(path, rawQuery, src), &out); err != nil {
		err = fmt.Errorf("produce to %q: %w", topic, err)
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			var partial ProduceResponse
			if json.Unmarshal(apiErr.Body, &partial) == nil && len(partial.Offsets) > 0 {
				return &partial, err
			}
		}
		return nil, err
	}
	return &out, nil
}

// Offset says where a consume starts: OffsetEarliest, OffsetLatest or
// OffsetAt(n). The zero value leaves it to the server.
type Offset string

// Symbolic offsets.
const (
	OffsetEarliest Offset = "earliest"
	OffsetLatest   Offset = "latest"
)

// OffsetAt is offset n.
func OffsetAt(n int64) Offset { return Offset(strconv.FormatInt(n, 10)) }

// Encodings of consumed keys and values.
const (
	EncodingAuto   = "auto"   // valid JSON embedded, other UTF-8 as a string, else value_b64
	EncodingText   = "text"   // strings, value_b64 when not UTF-8
	EncodingBase64 = "base64" // always value_b64
)

// ConsumeOptions are the query of a consume; zero fields take the server's
// defaults.
type ConsumeOptions struct {
	Offset   Offset
	Limit    int    // max records
	MaxBytes int    // max bytes of record data
	WaitMS   int    // long-poll: wait up to this long for a first record
	Encoding string // EncodingAuto, EncodingText or EncodingBase64
}

func (o ConsumeOptions) query() url.Values {
	q := url.Values{}
	if o.Offset != "" {
		q.Set("offset", string(o.Offset))
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.MaxBytes != 0 {
		q.Set("max_bytes", strconv.Itoa(o.MaxBytes))
	}
	if o.WaitMS != 0 {
		q.Set("wait_ms", strconv.Itoa(o.WaitMS))
	}
	if o.Encoding != "" {
		q.Set("encoding", o.Encoding)
	}
	return q
}

func consumePath(topic string, partition int32) string {
	return v1("topics", topic, "partitions", strconv.Itoa(int(partition)), "records")
}

// Consume reads committed records of one partition
// (GET /v1/topics/{t}/partitions/{p}/records). Reading outside the log gives
// OFFSET_OUT_OF_RANGE; see (*APIError).OffsetBounds.
func (c *Client) Consume(ctx context.Context, topic string, partition int32, opts ConsumeOptions) (*ConsumeResponse, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	var out ConsumeResponse
	if err := c.get(ctx, consumePath(topic, partition), opts.query(), &out); err != nil {
		return nil, fmt.Errorf("consume %s-%d: %w", topic, partition, err)
	}
	return &out, nil
}

// OffsetBounds returns the log start offset and high watermark an
// OFFSET_OUT_OF_RANGE reply carries.
func (e *APIError) OffsetBounds() (logStart, highWatermark int64, ok bool) {
	var eb ErrorBody
	if json.Unmarshal(e.Body, &eb) != nil || eb.LogStartOffset == nil || eb.HighWatermark == nil {
		return 0, 0, false
	}
	return *eb.LogStartOffset, *eb.HighWatermark, true
}

// followLine is one line of a follow stream: a record, or an error the
// server reports in the stream.
type followLine struct {
	ConsumedRecord
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
	Retriable bool   `json:"retriable"`
}

// Follow streams the records of every partition of topic
// (GET /v1/topics/{t}/records?follow=true) to fn, one at a time, starting
// from "earliest", "latest" or a timestamp in ms ("" = the server's default).
// Each record carries its partition and offset. It returns ctx.Err() once
// ctx ends, fn's error if fn fails, or an error when the stream breaks or
// the server ends it; it does not reconnect.
func (c *Client) Follow(ctx context.Context, topic, from string, fn func(ConsumedRecord) error) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	q := url.Values{"follow": {"true"}}
	if from != "" {
		q.Set("from", from)
	}
	resp, err := c.do(ctx, &call{method: http.MethodGet, path: v1("topics", topic, "records"),
		rawQuery: q.Encode(), accept: ContentTypeNDJSON, read: true})
	if err != nil {
		return fmt.Errorf("follow %q: %w", topic, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var line followLine // fresh each time: fn may keep the record
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("follow %q: the server ended the stream", topic)
			}
			return fmt.Errorf("follow %q: reading the stream: %w", topic, err)
		}
		if line.ErrorCode != "" {
			return fmt.Errorf("follow %q: %w", topic, &APIError{Status: resp.StatusCode, Code: line.ErrorCode,
				Message: line.Message, Retriable: line.Retriable, ServedBy: resp.Header.Get(HeaderServedBy)})
		}
		if err := fn(line.ConsumedRecord); err != nil {
			return err
		}
	}
}
