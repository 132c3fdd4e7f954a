package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/client"
	httpapi "weir/http"
)

// call does one HTTP request, with the headers hdr (name, value, ...), and
// returns the status and body.
func call(t testing.TB, method, url, contentType string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if len(hdr)%2 != 0 {
		t.Fatalf("call: headers %q are not name, value pairs", hdr)
	}
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the reply: %v", method, url, err)
	}
	if resp.Header.Get("Weir-Served-By") == "" {
		t.Fatalf("%s %s: no Weir-Served-By header", method, url)
	}
	return resp.StatusCode, out
}

func mustJSON(t testing.TB, status int, body []byte, want int, v any) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d: %s", status, want, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
	}
}

type stored struct {
	key, value []byte
}

// readPartition consumes a whole partition with encoding=base64 and returns offset -> record.
func readPartition(t testing.TB, url, topic string, p int) (map[int64]stored, int64) {
	t.Helper()
	out := map[int64]stored{}
	next := "earliest"
	for {
		st, body := call(t, "GET", fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%s&encoding=base64&limit=1000", url, topic, p, next), "", nil)
		var resp client.ConsumeResponse
		mustJSON(t, st, body, 200, &resp)
		for _, r := range resp.Records {
			var s stored
			if r.KeyB64 != nil {
				s.key, _ = base64.StdEncoding.DecodeString(*r.KeyB64)
			}
			if r.ValueB64 != nil {
				s.value, _ = base64.StdEncoding.DecodeString(*r.ValueB64)
			}
			if _, dup := out[r.Offset]; dup {
				t.Fatalf("offset %d returned twice", r.Offset)
			}
			out[r.Offset] = s
		}
		if resp.NextOffset >= resp.HighWatermark || fmt.Sprint(resp.NextOffset) == next {
			return out, resp.HighWatermark
		}
		next = fmt.Sprint(resp.NextOffset)
	}
}

func TestSingleNodeEndToEnd(t *testing.T) {
	n := startNode(t)
	u := n.url()

	st, body := call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"orders","partitions":3,"configs":{"retention.ms":"86400000"}}`))
	var topic client.Topic
	mustJSON(t, st, body, 201, &topic)
	if len(topic.Partitions) != 3 || topic.Partitions[0].Leader != 1 || topic.Configs["retention.ms"] != "86400000" {
		t.Fatalf("created topic: %s", body)
	}

	want := map[int]map[int64]stored{0: {}, 1: {}, 2: {}}
	note := func(offs []client.ProduceOffset, recs []stored) {
		t.Helper()
		if len(offs) != len(recs) {
			t.Fatalf("%d offsets for %d records", len(offs), len(recs))
		}
		for i, o := range offs {
			if o.ErrorCode != "" || o.Offset < 0 {
				t.Fatalf("record %d failed: %+v", i, o)
			}
			want[int(o.Partition)][o.Offset] = recs[i]
		}
	}

	// JSON records: a JSON value, a string, binary via base64, headers, timestamps.
	st, body = call(t, "POST", u+"/v1/topics/orders/records", "application/json", []byte(`{"records": [
		{"key": "user-1", "value": {"amount": 5}, "headers": {"trace": "abc"}},
		{"value": "plain text"},
		{"key_b64": "AAEC", "value_b64": "3q2+7w==", "partition": 2, "timestamp": 4102444800000}
	]}`))
	var pr client.ProduceResponse
	mustJSON(t, st, body, 200, &pr)
	note(pr.Offsets, []stored{{[]byte("user-1"), []byte(`{"amount":5}`)}, {nil, []byte("plain text")}, {[]byte{0, 1, 2}, []byte{0xde, 0xad, 0xbe, 0xef}}})
	if got, exp := pr.Offsets[0].Partition, httpapi.KeyPartition([]byte("user-1"), 3); got != exp {
		t.Fatalf("keyed record went to partition %d, Kafka's partitioner says %d", got, exp)
	}
	if pr.Offsets[2].Partition != 2 || pr.Offsets[2].Timestamp != 4102444800000 {
		t.Fatalf("explicit partition/timestamp not honoured: %+v", pr.Offsets[2])
	}
	tsOffset := pr.Offsets[2].Offset

	// NDJSON to a partition path.
	st, body = call(t, "POST", u+"/v1/topics/orders/partitions/1/records", "application/x-ndjson",
		[]byte("{\"key\":\"a\",\"value\":\"one\"}\n{\"value\":[1,2,3]}\n"))
	mustJSON(t, st, body, 200, &pr)
	note(pr.Offsets, []stored{{[]byte("a"), []byte("one")}, {nil, []byte("[1,2,3]")}})

	// Text lines with a key.
	st, body = call(t, "POST", u+"/v1/topics/orders/partitions/0/records?key=k", "text/plain", []byte("line one\nline two\r\n\nline four\n"))
	mustJSON(t, st, body, 200, &pr)
	note(pr.Offsets, []stored{{[]byte("k"), []byte("line one")}, {[]byte("k"), []byte("line two")}, {[]byte("k"), []byte{}}, {[]byte("k"), []byte("line four")}})

	// One binary record.
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	st, body = call(t, "POST", u+"/v1/topics/orders/partitions/2/records?acks=1", "application/octet-stream", bin)
	mustJSON(t, st, body, 200, &pr)
	note(pr.Offsets, []stored{{nil, bin}})

	// acks=0: answered without waiting, offsets unknown (-1), the record still lands.
	st, body = call(t, "POST", u+"/v1/topics/orders/partitions/1/records?acks=0", "text/plain", []byte("fire and forget"))
	mustJSON(t, st, body, 200, &pr)
	if pr.Offsets[0].Offset != -1 {
		t.Fatalf("acks=0 reply: %s", body)
	}
	want[1][int64(len(want[1]))] = stored{nil, []byte("fire and forget")}

	check := func(when string) {
		t.Helper()
		for p := 0; p < 3; p++ {
			ctx := testCtx(t, 10*time.Second)
			// acks=1 writes become visible once flushed: wait for the HW.
			for {
				got, hw := readPartition(t, u, "orders", p)
				if hw >= int64(len(want[p])) || ctx.Err() != nil {
					if len(got) != len(want[p]) {
						t.Fatalf("%s: partition %d has %d records, want %d", when, p, len(got), len(want[p]))
					}
					for off, w := range want[p] {
						g := got[off]
						if !bytes.Equal(g.key, w.key) || !bytes.Equal(g.value, w.value) || (g.key == nil) != (w.key == nil) {
							t.Fatalf("%s: partition %d offset %d = (%q, %q), want (%q, %q)", when, p, off, g.key, g.value, w.key, w.value)
						}
					}
					break
				}
			}
		}
	}
	check("after produce")

	// auto encoding embeds JSON, strings stay strings.
	st, body = call(t, "GET", fmt.Sprintf("%s/v1/topics/orders/partitions/%d/records?offset=earliest", u, pr.Offsets[0].Partition), "", nil)
	if st != 200 {
		t.Fatalf("consume: %d %s", st, body)
	}
	for p := 0; p < 3; p++ {
		_, body = call(t, "GET", fmt.Sprintf("%s/v1/topics/orders/partitions/%d/records", u, p), "", nil)
		if strings.Contains(string(body), `"user-1"`) && !strings.Contains(string(body), `"value":{"amount":5}`) {
			t.Fatalf("auto encoding should embed the JSON value: %s", body)
		}
	}

	// Offsets by timestamp.
	st, body = call(t, "GET", u+"/v1/topics/orders/offsets?timestamp=4102444800000", "", nil)
	var offs client.TopicOffsets
	mustJSON(t, st, body, 200, &offs)
	if o := offs.Partitions[2].Offset; o == nil || *o != tsOffset {
		t.Fatalf("offset for timestamp: %s (want %d in partition 2)", body, tsOffset)
	}

	// Long poll: a waiting consumer gets a record produced after it started waiting.
	got := make(chan []byte, 1)
	hw := offs.Partitions[1].HighWatermark
	go func() {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/topics/orders/partitions/1/records?offset=%d&wait_ms=20000", u, hw), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- b
	}()
	time.Sleep(200 * time.Millisecond) // give the poll time to start waiting; correctness does not depend on it
	st, body = call(t, "POST", u+"/v1/topics/orders/partitions/1/records", "text/plain", []byte("late"))
	mustJSON(t, st, body, 200, &pr)
	note(pr.Offsets, []stored{{nil, []byte("late")}})
	select {
	case b := <-got:
		if !strings.Contains(string(b), `"late"`) {
			t.Fatalf("long poll returned %s", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not return the new record")
	}

	// Follow stream: every record, then cancel.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", u+"/v1/topics/orders/records?from=earliest&follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	total := len(want[0]) + len(want[1]) + len(want[2])
	sc := bufio.NewScanner(resp.Body)
	seen := 0
	for seen < total && sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r client.ConsumedRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Partition == nil {
			t.Fatalf("follow line %q: %v", sc.Bytes(), err)
		}
		seen++
	}
	cancel()
	resp.Body.Close()
	if seen != total {
		t.Fatalf("follow stream gave %d of %d records", seen, total)
	}

	// A clean restart and a crash both keep everything.
	n.stop()
	n.restart()
	check("after restart")
	n.kill()
	n.restart()
	check("after kill -9")

	// Delete: the data goes.
	st, body = call(t, "DELETE", u+"/v1/topics/orders", "", nil)
	if st != 204 {
		t.Fatalf("delete: %d %s", st, body)
	}
	if _, err := os.Stat(filepath.Join(n.dataDir, "orders-0")); !os.IsNotExist(err) {
		t.Fatalf("partition dir still there after delete: %v", err)
	}
	st, _ = call(t, "GET", u+"/v1/topics/orders", "", nil)
	if st != 404 {
		t.Fatalf("deleted topic still described: %d", st)
	}
}

// TestKillDuringProduce kills the node while acks=all producers write and
// checks every acknowledged record after the restart.
func TestKillDuringProduce(t *testing.T) {
	n := startNode(t)
	u := n.url()
	st, body := call(t, "POST", u+"/v1/topics", "application/json", []byte(`{"name":"load","partitions":3}`))
	mustJSON(t, st, body, 201, nil)

	type acked struct {
		p     int
		off   int64
		value string
	}
	var mu sync.Mutex
	var acks []acked
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				var recs []string
				for j := 0; j < 10; j++ {
					recs = append(recs, fmt.Sprintf(`{"value":"w%d-%d-%d"}`, w, i, j))
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", u+"/v1/topics/load/records", strings.NewReader(`{"records":[`+strings.Join(recs, ",")+`]}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					return // the node is gone
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					continue
				}
				var pr client.ProduceResponse
				if json.Unmarshal(b, &pr) != nil {
					continue
				}
				mu.Lock()
				for j, o := range pr.Offsets {
					acks = append(acks, acked{int(o.Partition), o.Offset, fmt.Sprintf("w%d-%d-%d", w, i, j)})
				}
				mu.Unlock()
			}
		}()
	}
	// Kill once a good number of writes were acknowledged.
	for {
		mu.Lock()
		k := len(acks)
		mu.Unlock()
		if k >= 2000 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, bounded by ctx
	}
	n.kill()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acks) < 100 {
		t.Fatalf("only %d records were acknowledged before the kill", len(acks))
	}
	n.restart()
	for p := 0; p < 3; p++ {
		got, hw := readPartition(t, u, "load", p)
		for off := int64(0); off < hw; off++ {
			if _, ok := got[off]; !ok {
				t.Fatalf("partition %d: offset %d missing below the HW %d (offsets must be contiguous)", p, off, hw)
			}
		}
		for _, a := range acks {
			if a.p != p {
				continue
			}
			if g, ok := got[a.off]; !ok || string(g.value) != a.value {
				t.Fatalf("acknowledged record %q at %d/%d lost or changed: %q (hw %d)", a.value, a.p, a.off, g.value, hw)
			}
		}
	}
	t.Logf("%d acknowledged records all present after kill -9", len(acks))
}
