package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"weir/client"
)

// What every request's input goes through: path parameters, bodies, JSON
// bodies, and the echo of input in error messages.

// Echoed input is cut to maxEchoBytes: a 5 MB field name must not make a 5 MB
// error reply. maxMessageBytes bounds a whole error message, whatever it holds.
const (
	maxEchoBytes    = 128
	maxMessageBytes = 1024
	// maxPooledBody: bigger request buffers are left to the GC rather than
	// kept in the pool for the next request.
	maxPooledBody = 1 << 20
)

// clipInput cuts s to at most n bytes (on a UTF-8 boundary) and marks the cut.
func clipInput(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// quoteInput quotes client input for an error message, cut to maxEchoBytes.
func quoteInput(s string) string {
	return strconv.Quote(clipInput(s, maxEchoBytes))
}

// decodeParams unescapes the path parameters once, for every route: echo
// routes on the escaped path when it holds escapes (so that %2F stays inside
// one segment) and leaves the parameters escaped then.
func decodeParams(c echo.Context) error {
	if c.Request().URL.RawPath == "" {
		return nil
	}
	names, vals := c.ParamNames(), c.ParamValues()
	out := make([]string, len(vals))
	for i, v := range vals {
		u, err := url.PathUnescape(v)
		if err != nil {
			name := "parameter"
			if i < len(names) {
				name = names[i]
			}
			return badRequest("path segment %s (%s) is not validly escaped", name, quoteInput(v))
		}
		out[i] = u
	}
	c.SetParamValues(out...)
	return nil
}

// checkTopicParam answers a topic path segment that cannot be a topic name
// (no topic has it: creation checks names) at once, echoing it cut short.
func checkTopicParam(c echo.Context) error {
	for i, name := range c.ParamNames() {
		if name != "topic" {
			continue
		}
		if v := c.ParamValues()[i]; checkTopicName("topic", v) != nil {
			return Errorf(client.CodeUnknownTopicOrPartition, "topic %s does not exist (not a valid topic name)", quoteInput(v))
		}
	}
	return nil
}

// readBody reads the request body up to the configured limit into a pooled
// buffer, which the middleware takes back after the request.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	if b, ok := c.Get(bodyKey).([]byte); ok {
		return b, nil
	}
	req := c.Request()
	if req.ContentLength > s.opts.MaxRequestBytes {
		return nil, Errorf(client.CodeRecordListTooLarge, "the request body is larger than max_request_bytes (%d)", s.opts.MaxRequestBytes)
	}
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	c.Set(bodyBufKey, buf)
	if req.ContentLength > 0 { // one allocation of the right size, not ReadAll's doubling
		buf.Grow(int(req.ContentLength) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(req.Body, s.opts.MaxRequestBytes+1)); err != nil {
		return nil, badRequest("reading the request body: %v", err)
	}
	body := buf.Bytes()
	if int64(len(body)) > s.opts.MaxRequestBytes {
		return nil, Errorf(client.CodeRecordListTooLarge, "the request body is larger than max_request_bytes (%d)", s.opts.MaxRequestBytes)
	}
	c.Set(bodyKey, body) // kept for forwarding to the owner
	return body, nil
}

// releaseBody returns the request's body buffer to the pool once nothing
// (handler, forwarding) uses it any more.
func (s *Server) releaseBody(c echo.Context) {
	if buf, ok := c.Get(bodyBufKey).(*bytes.Buffer); ok && buf.Cap() <= maxPooledBody {
		c.Set(bodyBufKey, nil)
		c.Set(bodyKey, nil)
		s.bodies.Put(buf)
	}
}

// requireJSON refuses a JSON call whose body is not declared application/json:
// browsers send text/plain and form bodies to any site without asking first
// (no CORS preflight), so accepting them would let a web page create topics
// or commit offsets.
func requireJSON(c echo.Context) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct == "" {
		return Errorf(client.CodeUnsupportedMediaType, "the request has no Content-Type; send Content-Type: application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return Errorf(client.CodeUnsupportedMediaType, "Content-Type %s is not accepted here; send application/json", quoteInput(ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return Errorf(client.CodeUnsupportedMediaType, "Content-Type %s: JSON bodies are UTF-8 (charset=utf-8 or none)", quoteInput(ct))
	}
	return nil
}

// readJSON reads the request body (kept for forwarding) and decodes it
// strictly into a T.
func readJSON[T any](s *Server, c echo.Context) (T, error) {
	var req T
	if c.Request().ContentLength != 0 {
		if err := requireJSON(c); err != nil {
			return req, err
		}
	}
	body, err := s.readBody(c)
	if err != nil {
		return req, err
	}
	return req, s.shapes.decodeStrict(body, &req)
}

// decodeStrict decodes one JSON object into v (a pointer to a struct). Before
// encoding/json fills v, the body is checked against v's type, since
// encoding/json matches names case-insensitively, lets a repeated key
// override, takes null as "leave as is" and a missing number as 0 (a commit of
// "offset": null would be a rewind to 0). Refused: malformed JSON, unknown or
// wrongly cased fields, repeated fields, null where the field has no null,
// a missing number or boolean field without omitempty (its zero is a real
// value), wrong types and out-of-range numbers, data after the object.
func (sh *shapes) decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; expected a JSON object")
	}
	r := &jsonReader{data: body}
	t := reflect.TypeOf(v).Elem()
	if err := r.valueAhead(); err != nil {
		return asBadRequest(err)
	}
	if r.next() != '{' {
		return badRequest("the body must be a JSON object, got %s", r.kind())
	}
	if err := sh.check(r, t, "", 0); err != nil {
		return asBadRequest(err)
	}
	if err := r.end(); err != nil {
		return asBadRequest(err)
	}
	if err := json.Unmarshal(body, v); err != nil { // checked above: should not fail
		return badRequest("malformed JSON: %s", clipInput(err.Error(), maxEchoBytes))
	}
	return nil
}

// asBadRequest turns a reader's error into the API's 400.
func asBadRequest(err error) *Error {
	if ae, ok := err.(*Error); ok {
		return ae
	}
	return badRequest("%v", err)
}

// fieldError is a 400 naming the field at path ("" is the body itself).
func fieldError(path, format string, args ...any) *Error {
	if path == "" {
		return badRequest(format, args...)
	}
	return badRequest("%s: %s", path, fmt.Sprintf(format, args...))
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// check reads the value at r and checks it against type t.
func (sh *shapes) check(r *jsonReader, t reflect.Type, path string, depth int) error {
	if depth > maxJSONDepth {
		return r.tooDeep()
	}
	null, err := r.isNull()
	if err != nil {
		return err
	}
	if null {
		switch t.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			return nil
		}
		return fieldError(path, "expected %s, got null", expected(t))
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return r.skip(depth)
	}
	if err := r.valueAhead(); err != nil {
		return err
	}
	got := r.kind()
	mismatch := func() error { return fieldError(path, "expected %s, got %s", expected(t), got) }
	switch t.Kind() {
	case reflect.Pointer:
		return sh.check(r, t.Elem(), path, depth)
	case reflect.Struct:
		if r.next() != '{' {
			return mismatch()
		}
		return sh.checkStruct(r, t, path, depth)
	case reflect.Map:
		if r.next() != '{' {
			return mismatch()
		}
		return r.object(depth, func(key []byte, _ int) error {
			return sh.check(r, t.Elem(), path+"["+quoteInput(string(key))+"]", depth+1)
		})
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice { // []byte travels as base64
			if r.next() != '"' {
				return mismatch()
			}
			_, _, err := r.str()
			return err
		}
		if r.next() != '[' {
			return mismatch()
		}
		return r.array(depth, func(i int) error {
			return sh.check(r, t.Elem(), path+"["+strconv.Itoa(i)+"]", depth+1)
		})
	case reflect.String:
		if r.next() != '"' {
			return mismatch()
		}
		_, _, err := r.str()
		return err
	case reflect.Bool:
		switch r.next() {
		case 't':
			return r.literal("true")
		case 'f':
			return r.literal("false")
		}
		return mismatch()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return checkNumber(r, t, path, mismatch)
	}
	return r.skip(depth)
}

// checkNumber reads a number and checks that it fits t.
func checkNumber(r *jsonReader, t reflect.Type, path string, mismatch func() error) error {
	if c := r.next(); c != '-' && (c < '0' || c > '9') {
		return mismatch()
	}
	text, integer, err := r.number()
	if err != nil {
		return err
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		if _, err := strconv.ParseFloat(string(text), t.Bits()); err != nil {
			return fieldError(path, "%s is out of range", clipInput(string(text), maxEchoBytes))
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !integer {
			return fieldError(path, "expected %s, got %s", expected(t), clipInput(string(text), maxEchoBytes))
		}
		if _, err := strconv.ParseInt(string(text), 10, t.Bits()); err != nil {
			return fieldError(path, "%s is out of range for %s", clipInput(string(text), maxEchoBytes), expected(t))
		}
		return nil
	}
	if !integer || text[0] == '-' {
		return fieldError(path, "expected %s, got %s", expected(t), clipInput(string(text), maxEchoBytes))
	}
	if _, err := strconv.ParseUint(string(text), 10, t.Bits()); err != nil {
		return fieldError(path, "%s is out of range for %s", clipInput(string(text), maxEchoBytes), expected(t))
	}
	return nil
}

// expected words what a value of t looks like in JSON.
func expected(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return expected(t.Elem())
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return "a base64 string"
		}
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("a %d-bit integer", t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a non-negative %d-bit integer", t.Bits())
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a JSON value"
}

// shapeField is a struct field as JSON names it.
type shapeField struct {
	name     string
	typ      reflect.Type
	required bool
}

// shapes remembers the JSON fields of each struct type bodies are checked
// against: the reflection is done once per type, not for every object of
// every request. The zero value is ready.
type shapes struct {
	fields sync.Map // reflect.Type -> []shapeField
}

// of is t's JSON fields (structFields), from the cache.
func (sh *shapes) of(t reflect.Type) []shapeField {
	if f, ok := sh.fields.Load(t); ok {
		return f.([]shapeField)
	}
	f, _ := sh.fields.LoadOrStore(t, structFields(t))
	return f.([]shapeField)
}

// structFields lists t's JSON fields, those of embedded structs included.
func structFields(t reflect.Type) []shapeField {
	var out []shapeField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, structFields(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		out = append(out, shapeField{name: name, typ: ft, required: !omit && zeroIsAValue(ft)})
	}
	return out
}

// zeroIsAValue: for numbers and booleans an absent field cannot be told from
// a given 0 or false, so such a field (without omitempty) must be given.
func zeroIsAValue(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// checkStruct reads an object whose fields must be t's, named exactly.
func (sh *shapes) checkStruct(r *jsonReader, t reflect.Type, path string, depth int) error {
	fields := sh.of(t)
	given := make([]bool, len(fields))
	prefix := ""
	if path != "" {
		prefix = path + "."
	}
	err := r.object(depth, func(key []byte, _ int) error {
		for i, f := range fields {
			if f.name == string(key) {
				given[i] = true
				return sh.check(r, f.typ, prefix+f.name, depth+1)
			}
		}
		for _, f := range fields {
			if strings.EqualFold(f.name, string(key)) {
				return fieldError(path, "unknown field %s (names are case-sensitive: did you mean %q?)", quoteInput(string(key)), f.name)
			}
		}
		return fieldError(path, "unknown field %s", quoteInput(string(key)))
	})
	if err != nil {
		return err
	}
	for i, f := range fields {
		if f.required && !given[i] {
			return fieldError(prefix+f.name, "missing; it is required")
		}
	}
	return nil
}
