package httpapi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A strict JSON reader (RFC 8259) for request bodies. encoding/json and
// fastjson each let through or lose something a client should hear about
// (NaN, leading zeros, bad escapes, raw control characters, duplicate or
// wrongly cased keys); this reader refuses all of it with the byte offset of
// the fault, and reads values in place without building a tree of them, so a
// body's memory is the body and what the caller keeps.
//
// Bytes of strings are not checked for UTF-8: a record's value is stored as
// sent, and the read path answers bytes that are not UTF-8 as base64.

// maxJSONDepth bounds nesting; deeper bodies are refused rather than recursed into.
const maxJSONDepth = 512

// syntaxError is JSON refused at an offset of the request body: malformed,
// or valid but refused (a key given twice, nesting too deep).
type syntaxError struct {
	off  int
	msg  string
	what string // "" is malformed JSON
}

func (e *syntaxError) Error() string {
	what := e.what
	if what == "" {
		what = "malformed JSON"
	}
	return fmt.Sprintf("%s at byte %d: %s", what, e.off, e.msg)
}

// jsonReader reads one JSON text from data.
type jsonReader struct {
	data []byte
	pos  int
	base int // offset of data in the request body (an NDJSON line's start)
}

func (r *jsonReader) errAt(pos int, format string, args ...any) error {
	return &syntaxError{off: r.base + pos, msg: fmt.Sprintf(format, args...)}
}

// describe names the byte at pos for a message.
func (r *jsonReader) describe(pos int) string {
	if pos >= len(r.data) {
		return "the end of the body"
	}
	c := r.data[pos]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (r *jsonReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// atEnd skips whitespace and reports whether nothing follows.
func (r *jsonReader) atEnd() bool {
	r.skipSpace()
	return r.pos >= len(r.data)
}

// next skips whitespace and returns the next byte without consuming it: 0 at
// the end (a NUL byte in the body is 0 too: check atEnd to tell them apart).
func (r *jsonReader) next() byte {
	r.skipSpace()
	if r.pos >= len(r.data) {
		return 0
	}
	return r.data[r.pos]
}

// expect consumes c after whitespace.
func (r *jsonReader) expect(c byte, what string) error {
	if r.next() != c {
		return r.errAt(r.pos, "expected %s, found %s", what, r.describe(r.pos))
	}
	r.pos++
	return nil
}

// end checks that only whitespace follows.
func (r *jsonReader) end() error {
	if !r.atEnd() {
		return r.errAt(r.pos, "unexpected data after the JSON object: %s", r.describe(r.pos))
	}
	return nil
}

// kind names the JSON type of the value that starts at the next byte.
func (r *jsonReader) kind() string {
	switch r.next() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	}
	return "not a JSON value"
}

func (r *jsonReader) tooDeep() error {
	return &syntaxError{off: r.base + r.pos, what: "JSON refused", msg: fmt.Sprintf("nested more than %d deep", maxJSONDepth)}
}

// valueAhead fails unless a JSON value starts at the next byte: what is not
// one is malformed JSON, not a value of the wrong type.
func (r *jsonReader) valueAhead() error {
	if r.kind() == "not a JSON value" {
		if r.pos >= len(r.data) {
			return r.errAt(r.pos, "the body ends where a value should be")
		}
		return r.errAt(r.pos, "expected a value, found %s", r.describe(r.pos))
	}
	return nil
}

// isNull consumes a null if one comes next.
func (r *jsonReader) isNull() (bool, error) {
	if r.next() != 'n' {
		return false, nil
	}
	return true, r.literal("null")
}

func (r *jsonReader) literal(lit string) error {
	if len(r.data)-r.pos < len(lit) || string(r.data[r.pos:r.pos+len(lit)]) != lit {
		return r.errAt(r.pos, "invalid literal (expected %s)", lit)
	}
	r.pos += len(lit)
	return nil
}

// str reads a string and returns its raw content (between the quotes, escapes
// as sent) and whether it holds escapes. The closing quote and the escapes
// are found with bytes.IndexByte (vectorised), the bytes between them checked
// for control characters a word at a time: the produce hot path is 1 KiB
// strings.
func (r *jsonReader) str() (raw []byte, escaped bool, err error) {
	if err := r.expect('"', "a string"); err != nil {
		return nil, false, err
	}
	start, quote := r.pos, -1 // quote: the next '"' at or after r.pos, once known
	for {
		if quote < r.pos {
			q := bytes.IndexByte(r.data[r.pos:], '"')
			if q < 0 {
				return nil, false, r.errAt(start-1, "the string never ends")
			}
			quote = r.pos + q
		}
		seg := r.data[r.pos:quote]
		bs := bytes.IndexByte(seg, '\\')
		if bs >= 0 {
			seg = seg[:bs]
		}
		if i := firstControl(seg); i >= 0 {
			return nil, false, r.errAt(r.pos+i, "control character 0x%02x in a string (escape it)", seg[i])
		}
		r.pos += len(seg)
		if bs < 0 { // at the closing quote
			raw = r.data[start:r.pos]
			r.pos++
			return raw, escaped, nil
		}
		escaped = true
		if r.pos+1 >= len(r.data) {
			return nil, false, r.errAt(r.pos, "the string ends inside an escape")
		}
		switch r.data[r.pos+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			r.pos += 2
		case 'u':
			if r.pos+6 > len(r.data) || !isHex4(r.data[r.pos+2:r.pos+6]) {
				return nil, false, r.errAt(r.pos, `invalid escape: \u must be followed by 4 hex digits`)
			}
			r.pos += 6
		default:
			return nil, false, r.errAt(r.pos, `invalid escape \%s in a string`, printable(r.data[r.pos+1]))
		}
	}
}

// firstControl is the index of the first byte below 0x20 in b, or -1. A
// word at a time: a byte c < 0x20 sets the high bit of (c-0x20) & ^c, and
// bytes above a true hit are the only false ones.
func firstControl(b []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if (w-ones*0x20)&^w&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return i
		}
	}
	return -1
}

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return fmt.Sprintf("<0x%02x>", c)
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number reads a number per RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// and returns its text and whether it is an integer (no fraction or exponent).
func (r *jsonReader) number() (text []byte, integer bool, err error) {
	r.skipSpace()
	start := r.pos
	d := r.data
	if r.pos < len(d) && d[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(d) && d[r.pos] == '0':
		r.pos++
		if r.pos < len(d) && d[r.pos] >= '0' && d[r.pos] <= '9' {
			return nil, false, r.errAt(start, "invalid number: leading zero")
		}
	case r.pos < len(d) && d[r.pos] >= '1' && d[r.pos] <= '9':
		r.digits()
	default:
		return nil, false, r.errAt(start, "invalid value: %s", r.describe(start))
	}
	integer = true
	if r.pos < len(d) && d[r.pos] == '.' {
		r.pos++
		if r.digits() == 0 {
			return nil, false, r.errAt(start, "invalid number: no digits after the decimal point")
		}
		integer = false
	}
	if r.pos < len(d) && (d[r.pos] == 'e' || d[r.pos] == 'E') {
		r.pos++
		if r.pos < len(d) && (d[r.pos] == '+' || d[r.pos] == '-') {
			r.pos++
		}
		if r.digits() == 0 {
			return nil, false, r.errAt(start, "invalid number: no digits in the exponent")
		}
		integer = false
	}
	return d[start:r.pos], integer, nil
}

func (r *jsonReader) digits() int {
	n := 0
	for r.pos < len(r.data) && r.data[r.pos] >= '0' && r.data[r.pos] <= '9' {
		r.pos++
		n++
	}
	return n
}

// skip reads any value, checking it.
func (r *jsonReader) skip(depth int) error {
	switch r.next() {
	case '{':
		return r.object(depth, func(_ []byte, _ int) error { return r.skip(depth + 1) })
	case '[':
		return r.array(depth, func(int) error { return r.skip(depth + 1) })
	case '"':
		_, _, err := r.str()
		return err
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	if r.atEnd() {
		return r.errAt(r.pos, "the body ends where a value should be")
	}
	_, _, err := r.number()
	return err
}

// object reads an object, calling fn with each key (unescaped) and the offset
// of its value; fn reads the value. Duplicate keys are refused: which one
// counts would be a guess.
func (r *jsonReader) object(depth int, fn func(key []byte, at int) error) error {
	if depth > maxJSONDepth {
		return r.tooDeep()
	}
	if err := r.expect('{', "an object"); err != nil {
		return err
	}
	if r.next() == '}' {
		r.pos++
		return nil
	}
	var seen map[string]struct{}
	var first []byte // most objects have few keys: a map only from the second on
	for n := 0; ; n++ {
		keyAt := r.pos
		raw, esc, err := r.str()
		if err != nil {
			if r.pos == keyAt {
				return r.errAt(keyAt, "expected a field name in quotes, found %s", r.describe(keyAt))
			}
			return err
		}
		key := raw
		if esc {
			key = appendUnescaped(nil, raw)
		}
		if n == 0 {
			first = key
		} else {
			if seen == nil {
				seen = map[string]struct{}{string(first): {}}
			}
			if _, dup := seen[string(key)]; dup {
				return &syntaxError{off: r.base + keyAt, what: "ambiguous JSON",
					msg: fmt.Sprintf("field %s is given twice", quoteInput(string(key)))}
			}
			seen[string(key)] = struct{}{}
		}
		if err := r.expect(':', "':' after a field name"); err != nil {
			return err
		}
		r.skipSpace()
		if err := fn(key, r.pos); err != nil {
			return err
		}
		switch r.next() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return nil
		default:
			return r.errAt(r.pos, "expected ',' or '}' in an object, found %s", r.describe(r.pos))
		}
	}
}

// array reads an array, calling fn for each element; fn reads it.
func (r *jsonReader) array(depth int, fn func(i int) error) error {
	if depth > maxJSONDepth {
		return r.tooDeep()
	}
	if err := r.expect('[', "an array"); err != nil {
		return err
	}
	if r.next() == ']' {
		r.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := fn(i); err != nil {
			return err
		}
		switch r.next() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			return nil
		default:
			return r.errAt(r.pos, "expected ',' or ']' in an array, found %s", r.describe(r.pos))
		}
	}
}

// appendUnescaped appends the string content raw (checked by str) with its
// escapes decoded. A lone surrogate becomes U+FFFD, as encoding/json does.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(raw[i+3:i+7])); pair != utf8.RuneError {
						r = pair
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// appendCompact appends the checked JSON value raw without the whitespace
// between its tokens (strings are copied as sent).
func appendCompact(dst, raw []byte) []byte {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString:
			dst = append(dst, c)
			if c == '\\' {
				i++
				dst = append(dst, raw[i])
			} else if c == '"' {
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			dst = append(dst, c)
			inString = c == '"'
		}
	}
	return dst
}

// isCompact reports whether the checked JSON value raw has no whitespace between tokens.
func isCompact(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		case c == '"':
			inString = true
		}
	}
	return true
}
