package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// echoMaxBody bounds a request body of the echo handler.
const echoMaxBody = 64 << 20

// EchoHandler returns the baseline a produce bench is compared with: a bare
// net/http handler of POST /v1/topics/{t}/records (and
// /v1/topics/{t}/partitions/{p}/records) that reads the body, decodes the
// JSON records (counts the lines of an NDJSON or text body; an octet-stream
// body is one record) and replies a ProduceResponse with one fake offset per
// record, storing nothing. `weir bench produce` against it measures the floor
// HTTP+JSON puts under any produce on this machine. Other paths get 404.
func EchoHandler() http.Handler {
	h := &echoHandler{}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/topics/{topic}/records", h.produce)
	mux.HandleFunc("POST /v1/topics/{topic}/partitions/{partition}/records", h.produce)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		echoError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type echoHandler struct {
	next atomic.Int64 // next fake offset
	bufs sync.Pool    // *bytes.Buffer for bodies
}

func (h *echoHandler) produce(w http.ResponseWriter, r *http.Request) {
	var partition int32
	if p := r.PathValue("partition"); p != "" {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			echoError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("partition %q: not a partition number", p))
			return
		}
		partition = int32(n)
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 4<<20 {
			h.bufs.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, echoMaxBody)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			echoError(w, http.StatusRequestEntityTooLarge, CodeRecordListTooLarge, err.Error())
			return
		}
		echoError(w, http.StatusBadRequest, CodeInvalidRequest, "reading the body: "+err.Error())
		return
	}
	body := buf.Bytes()
	var n int
	switch mediaType(r.Header.Get("Content-Type")) {
	case "", ContentTypeJSON:
		var req ProduceRequest
		if err := json.Unmarshal(body, &req); err != nil {
			echoError(w, http.StatusBadRequest, CodeInvalidRequest, "body: "+err.Error())
			return
		}
		n = len(req.Records)
	case ContentTypeNDJSON:
		n = countLines(body, true)
	case ContentTypeText:
		n = countLines(body, false)
	case ContentTypeOctet:
		n = 1
	default:
		echoError(w, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			fmt.Sprintf("content type %q: want %s, %s, %s or %s", r.Header.Get("Content-Type"),
				ContentTypeJSON, ContentTypeNDJSON, ContentTypeText, ContentTypeOctet))
		return
	}
	if n == 0 {
		echoError(w, http.StatusBadRequest, CodeInvalidRequest, "records: none given")
		return
	}
	first := h.next.Add(int64(n)) - int64(n)
	ts := time.Now().UnixMilli()
	resp := ProduceResponse{Offsets: make([]ProduceOffset, n)}
	for i := range resp.Offsets {
		resp.Offsets[i] = ProduceOffset{Partition: partition, Offset: first + int64(i), Timestamp: ts}
	}
	echoJSON(w, http.StatusOK, resp)
}

// countLines counts the lines of body; a last line needs no newline. With
// skipBlank, lines of only white space do not count.
func countLines(body []byte, skipBlank bool) int {
	n := 0
	for len(body) > 0 {
		line, rest, _ := bytes.Cut(body, []byte{'\n'})
		if !skipBlank || len(bytes.TrimSpace(line)) > 0 {
			n++
		}
		body = rest
	}
	return n
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

func echoJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.Header().Set(HeaderServedBy, "echo")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

func echoError(w http.ResponseWriter, status int, code, msg string) {
	echoJSON(w, status, ErrorBody{ErrorCode: code, Message: msg})
}
