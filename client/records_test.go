package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

type rawSeen struct {
	path, query, contentType, body string
	contentLength                  int64
}

// recordingServer answers produces with one offset and records what it got.
func recordingServer(t *testing.T, status func(n int) int) (base string, seen func() []rawSeen) {
	t.Helper()
	var mu sync.Mutex
	var all []rawSeen
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		mu.Lock()
		all = append(all, rawSeen{r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(b), r.ContentLength})
		n := len(all)
		mu.Unlock()
		if st := status(n); st != 200 {
			writeError(w, st, CodeLeaderNotAvailable, "no leader", true)
			return
		}
		writeJSON(w, 200, ProduceResponse{Offsets: []ProduceOffset{{Offset: int64(n)}}})
	}))
	return srv.URL, func() []rawSeen {
		mu.Lock()
		defer mu.Unlock()
		return append([]rawSeen(nil), all...)
	}
}

func always200(int) int { return 200 }

// onlyReader hides every method but Read, as a pipe would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestProduceRawContentTypes(t *testing.T) {
	u, seen := recordingServer(t, always200)
	c := newClient(t, []string{u})
	p := int32(1)
	for _, tc := range []struct {
		ct    string
		body  io.Reader
		part  *int32
		query url.Values
		want  rawSeen
	}{
		{ContentTypeNDJSON, strings.NewReader("{\"value\":\"a\"}\n{\"value\":\"b\"}\n"), nil, url.Values{"acks": {"1"}},
			rawSeen{"/v1/topics/t/records", "acks=1", ContentTypeNDJSON, "{\"value\":\"a\"}\n{\"value\":\"b\"}\n", 28}},
		{ContentTypeText, bytes.NewBufferString("one\ntwo\n"), &p, url.Values{"key": {"k 1"}},
			rawSeen{"/v1/topics/t/partitions/1/records", "key=k+1", ContentTypeText, "one\ntwo\n", 8}},
		{ContentTypeOctet, bytes.NewReader([]byte{0, 1, 2, 0xff}), nil, nil,
			rawSeen{"/v1/topics/t/records", "", ContentTypeOctet, "\x00\x01\x02\xff", 4}},
		{ContentTypeOctet, onlyReader{strings.NewReader("streamed")}, nil, nil,
			rawSeen{"/v1/topics/t/records", "", ContentTypeOctet, "streamed", -1}},
		{"", strings.NewReader(`{"records":[]}`), nil, nil,
			rawSeen{"/v1/topics/t/records", "", ContentTypeJSON, `{"records":[]}`, 14}},
	} {
		if _, err := c.ProduceRaw(t.Context(), "t", tc.part, tc.ct, tc.body, tc.query); err != nil {
			t.Fatalf("ProduceRaw %s: %v", tc.ct, err)
		}
		got := seen()
		if last := got[len(got)-1]; last != tc.want {
			t.Errorf("server got %+v, want %+v", last, tc.want)
		}
	}
}

func TestProduceRawRetries(t *testing.T) {
	// A seekable body is re-sent whole after a retriable error.
	u, seen := recordingServer(t, func(n int) int {
		if n == 1 {
			return 503
		}
		return 200
	})
	c := newClient(t, []string{u})
	body := strings.NewReader("xxprefix-skipped")
	body.Seek(2, io.SeekStart) // the body starts where the reader is
	if _, err := c.ProduceRaw(t.Context(), "t", nil, ContentTypeOctet, body, nil); err != nil {
		t.Fatalf("ProduceRaw: %v", err)
	}
	got := seen()
	if len(got) != 2 || got[0].body != "prefix-skipped" || got[1].body != "prefix-skipped" {
		t.Errorf("server got %+v", got)
	}

	// A plain reader cannot be re-sent once read: no retry.
	u2, seen2 := recordingServer(t, func(int) int { return 503 })
	c2 := newClient(t, []string{u2})
	_, err := c2.ProduceRaw(t.Context(), "t", nil, ContentTypeOctet, onlyReader{strings.NewReader("once")}, nil)
	if !IsCode(err, CodeLeaderNotAvailable) || len(seen2()) != 1 {
		t.Errorf("err = %v after %d sends, want one send", err, len(seen2()))
	}

	// But it fails over past a server it could not connect to.
	u3, seen3 := recordingServer(t, always200)
	c3 := newClient(t, []string{closedAddr(t), u3})
	if _, err := c3.ProduceRaw(t.Context(), "t", nil, ContentTypeNDJSON, onlyReader{strings.NewReader("{}\n")}, nil); err != nil {
		t.Fatalf("ProduceRaw: %v", err)
	}
	if got := seen3(); len(got) != 1 || got[0].body != "{}\n" {
		t.Errorf("server got %+v", got)
	}
}

// followServer streams lines, then holds the stream open until the client
// goes away or the test ends.
func followServer(t *testing.T, lines []string, hold bool) (base string, query chan url.Values) {
	t.Helper()
	query = make(chan url.Values, 1)
	done := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query <- r.URL.Query()
		w.Header().Set("Content-Type", ContentTypeNDJSON)
		w.Header().Set(HeaderServedBy, "1")
		for _, l := range lines {
			fmt.Fprintln(w, l)
			http.NewResponseController(w).Flush()
		}
		if hold {
			select {
			case <-r.Context().Done():
			case <-done:
			}
		}
	}))
	t.Cleanup(func() { close(done) }) // runs before srv.Close
	return srv.URL, query
}

func TestFollow(t *testing.T) {
	lines := []string{
		`{"partition":0,"offset":5,"timestamp":100,"key":"k","value":{"a":1}}`,
		``,
		`{"partition":2,"offset":9,"timestamp":101,"value_b64":"AAE=","headers":{"h":"v"}}`,
		`{"partition":1,"offset":0,"timestamp":102,"value":"third"}`,
	}
	u, query := followServer(t, lines, true)
	c := newClient(t, []string{u})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []ConsumedRecord
	err := c.Follow(ctx, "orders", "earliest", func(r ConsumedRecord) error {
		got = append(got, r)
		if len(got) == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow = %v, want context.Canceled", err)
	}
	q := <-query
	if q.Get("follow") != "true" || q.Get("from") != "earliest" {
		t.Errorf("query = %v", q)
	}
	if len(got) != 3 {
		t.Fatalf("got %d records: %+v", len(got), got)
	}
	r0, r1, r2 := got[0], got[1], got[2]
	if *r0.Partition != 0 || r0.Offset != 5 || string(r0.Key) != `"k"` || string(r0.Value) != `{"a":1}` {
		t.Errorf("record 0 = %+v", r0)
	}
	if *r1.Partition != 2 || r1.Offset != 9 || *r1.ValueB64 != "AAE=" || r1.Headers["h"] != "v" {
		t.Errorf("record 1 = %+v", r1)
	}
	if *r2.Partition != 1 || string(r2.Value) != `"third"` || string(r0.Value) != `{"a":1}` {
		t.Errorf("record 2 = %+v (or record 0 was overwritten)", r2)
	}
}

func TestFollowEnds(t *testing.T) {
	rec := `{"partition":0,"offset":1,"timestamp":1,"value":"x"}`
	t.Run("fn error", func(t *testing.T) {
		u, _ := followServer(t, []string{rec, rec}, true)
		stop := errors.New("stop")
		n := 0
		err := newClient(t, []string{u}).Follow(t.Context(), "t", "", func(ConsumedRecord) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("Follow = %v after %d records", err, n)
		}
	})
	t.Run("server ends", func(t *testing.T) {
		u, _ := followServer(t, []string{rec}, false)
		err := newClient(t, []string{u}).Follow(t.Context(), "t", "latest", func(ConsumedRecord) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "ended the stream") {
			t.Errorf("Follow = %v", err)
		}
	})
	t.Run("error in stream", func(t *testing.T) {
		u, _ := followServer(t, []string{rec, `{"error_code":"LEADER_NOT_AVAILABLE","message":"lost","retriable":true}`}, true)
		err := newClient(t, []string{u}).Follow(t.Context(), "t", "", func(ConsumedRecord) error { return nil })
		if !IsCode(err, CodeLeaderNotAvailable) {
			t.Errorf("Follow = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		u, _ := followServer(t, []string{"not json"}, true)
		err := newClient(t, []string{u}).Follow(t.Context(), "t", "", func(ConsumedRecord) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "reading the stream") {
			t.Errorf("Follow = %v", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 404, CodeUnknownTopicOrPartition, "no topic", false)
		}))
		err := newClient(t, []string{srv.URL}).Follow(t.Context(), "t", "", func(ConsumedRecord) error { return nil })
		if !IsCode(err, CodeUnknownTopicOrPartition) {
			t.Errorf("Follow = %v", err)
		}
	})
}
