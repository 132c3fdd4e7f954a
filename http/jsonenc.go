package httpapi

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"weir/logstore"
)

// The consume path writes its JSON by hand: encoding/json's reflection and its
// re-validation of embedded values cost more than reading the records.

const hexDigits = "0123456789abcdef"

// appendJSONString appends b as a JSON string; invalid UTF-8 becomes U+FFFD
// (as encoding/json does).
func appendJSONString(dst, b []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, b[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, b[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // valid JSON, but break JavaScript parsers
			dst = append(dst, b[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, b[start:]...)
	return append(dst, '"')
}

// appendBytesField appends `,"name":<value>` or `,"name_b64":"..."` per the
// encoding. Bytes that are not UTF-8 go as name_b64 whatever the encoding:
// a reply is always valid JSON to strict parsers (a JSON text must be UTF-8,
// and bytes like {"a":"\xff"} pass for JSON otherwise).
func appendBytesField(dst []byte, name string, b []byte, enc encoding) []byte {
	if enc != encBase64 && utf8.Valid(b) {
		dst = append(dst, `,"`...)
		dst = append(dst, name...)
		dst = append(dst, `":`...)
		if enc == encAuto && mayBeJSON(b) && fastjson.ValidateBytes(b) == nil {
			return append(dst, b...)
		}
		return appendJSONString(dst, b)
	}
	dst = append(dst, `,"`...)
	dst = append(dst, name...)
	dst = append(dst, `_b64":`...)
	return appendBase64String(dst, b)
}

// mayBeJSON rules out, by its first byte, most text that is not JSON (a
// key like user-1), sparing it fastjson's validation, whose errors allocate.
func mayBeJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[', '"', '-', 't', 'f', 'n':
			return true
		}
		return '0' <= c && c <= '9'
	}
	return false
}

// appendRecordJSON appends one record as the API's JSON object. partition < 0
// leaves the field out (the partition endpoint names it once, above).
func appendRecordJSON(dst []byte, r *logstore.Record, enc encoding, partition int32) []byte {
	dst = append(dst, '{')
	if partition >= 0 {
		dst = append(dst, `"partition":`...)
		dst = strconv.AppendInt(dst, int64(partition), 10)
		dst = append(dst, ',')
	}
	return appendRecordFields(dst, r, enc)
}

// appendRecordFields appends a record's offset, timestamp, key, value and
// headers and the closing brace, after a '{' and any fields the caller put first.
func appendRecordFields(dst []byte, r *logstore.Record, enc encoding) []byte {
	dst = append(dst, `"offset":`...)
	dst = strconv.AppendInt(dst, r.Offset, 10)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, r.Timestamp, 10)
	if r.Key != nil {
		dst = appendBytesField(dst, "key", r.Key, enc)
	}
	if r.Value == nil {
		dst = append(dst, `,"value":null`...)
	} else {
		dst = appendBytesField(dst, "value", r.Value, enc)
	}
	return append(appendReplyHeaders(dst, r.Headers), '}')
}

// appendReplyHeaders appends a record's headers to a reply (or to a
// produce forwarded to a partition's leader, which reads them back the same
// way): those whose value is UTF-8 as `,"headers":{...}`, the others as
// `,"headers_b64":{...}` with their values in base64. (Keys are strings, as
// in Kafka; a key that is not UTF-8 has its bad bytes shown as U+FFFD.)
func appendReplyHeaders(dst []byte, headers []logstore.Header) []byte {
	bin := 0
	for _, h := range headers {
		if !utf8.Valid(h.Value) {
			bin++
		}
	}
	if bin < len(headers) {
		dst = appendHeaderObject(dst, `,"headers":{`, headers, func(h *logstore.Header) bool { return utf8.Valid(h.Value) }, appendJSONString)
	}
	if bin > 0 {
		dst = appendHeaderObject(dst, `,"headers_b64":{`, headers, func(h *logstore.Header) bool { return !utf8.Valid(h.Value) }, appendBase64String)
	}
	return dst
}

// appendHeaderObject appends open, then the headers pick chooses as
// "key":value with value written by val, then the closing brace.
func appendHeaderObject(dst []byte, open string, headers []logstore.Header, pick func(*logstore.Header) bool, val func([]byte, []byte) []byte) []byte {
	dst = append(dst, open...)
	first := true
	for i := range headers {
		h := &headers[i]
		if !pick(h) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, []byte(h.Key))
		dst = append(dst, ':')
		dst = val(dst, h.Value)
	}
	return append(dst, '}')
}

// appendBase64String appends b in base64 as a JSON string.
func appendBase64String(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}
