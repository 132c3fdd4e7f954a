package httpapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"weir/client"
	"weir/logstore"
)

// Fuzz targets for every decoder of a request body: whatever the bytes, no
// panic, and either a refusal in the API's error shape (a 4xx with a code and
// a short message) or a result that holds up (valid JSON was given; the
// produce's batches decode). Run one with e.g.
// go test ./http -run '^$' -fuzz '^FuzzProduceJSON$' -fuzztime 60s

// checkRefusal fails unless err is an API error a client can act on.
func checkRefusal(t *testing.T, body []byte, err error) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("%q: %T %v is not an API error", body, err, err)
	}
	if ae.Status < 400 || ae.Status >= 500 || ae.Code == "" || ae.Message == "" {
		t.Fatalf("%q: refused with %d %q %q", body, ae.Status, ae.Code, ae.Message)
	}
	if len(ae.Message) > maxMessageBytes {
		t.Fatalf("%q: a %d-byte message", body, len(ae.Message))
	}
}

// checkAgainstEncodingJSON compares with encoding/json: what it takes as
// valid JSON is never called malformed here, and what is accepted here it never refuses.
func checkAgainstEncodingJSON(t *testing.T, body []byte, err error) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		return
	}
	if strings.HasPrefix(ae.Message, "malformed JSON: ") {
		t.Fatalf("%q: the strict check passed what encoding/json refused: %s", body, ae.Message)
	}
	if strings.Contains(ae.Message, "malformed JSON at byte") && json.Valid(body) {
		t.Fatalf("%q: valid JSON called malformed: %s", body, ae.Message)
	}
}

// fuzzProduce parses fuzzed bodies as mt into a 3-partition topic.
func fuzzProduce(f *testing.F, mt string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	codecs := logstore.NewCodecs(0)
	f.Fuzz(func(t *testing.T, body []byte) {
		st := &produceState{}
		st.reset(TopicInfo{Name: "t", Partitions: 3, MaxMessageBytes: 4096}, -1, []byte("k"), 1, 50, func() int32 { return 0 })
		if err := st.parse(body, mt); err != nil {
			checkRefusal(t, body, err)
			if mt == "application/json" {
				checkAgainstEncodingJSON(t, body, err)
			}
			return
		}
		if mt == "application/json" && !json.Valid(body) {
			t.Fatalf("%q: accepted, but it is not JSON", body)
		}
		n := 0
		for _, b := range st.batches {
			batch, err := b.b.Finish(logstore.BatchOptions{})
			if err != nil {
				t.Fatalf("%q: %v", body, err)
			}
			recs, err := codecs.Records(batch)
			if err != nil || batch.Validate() != nil {
				t.Fatalf("%q: the batch does not decode: %v", body, err)
			}
			n += len(recs)
		}
		if n != len(st.place) || n > 50 {
			t.Fatalf("%q: %d records in batches, %d placed", body, n, len(st.place))
		}
	})
}

func FuzzProduceJSON(f *testing.F) {
	fuzzProduce(f, "application/json",
		`{"records":[{"key":"user-1","value":{"amount":5},"headers":{"trace":"abc"}},{"value":"plain text"}]}`,
		`{"records":[{"key_b64":"AAEC","value_b64":"3q2+7w==","partition":2,"timestamp":1763700000000}]}`,
		`{"records":[{"value":[1,-2.5e3,true,null,"\u00e9\ud83d\ude00"]},{"value":null}]}`,
		`{"records":[{"value":NaN}]}`, `{"records":[{"value":01}]}`, `{"records":[{"value":"\q"}]}`,
		`{"records":[{"headers":{"a":"1","a":"2"}}]}`, `{"records":[]}`, `[]`, ``)
}

func FuzzProduceNDJSON(f *testing.F) {
	fuzzProduce(f, "application/x-ndjson",
		"{\"key\":\"a\",\"value\":1}\n{\"value\":\"b\",\"partition\":1}\n",
		"\n\r\n{\"value\":{}}\r\n", "{\"value\":1} {}\n", "{}\n{}\n{}\n", "\x1e{\"value\":2}\n")
}

func FuzzProduceText(f *testing.F) {
	fuzzProduce(f, "text/plain", "a\nb\r\n\nc", "", "\n\n\n", "\xff\xfe\n")
}

// fuzzDecoder decodes fuzzed bodies into a T as readJSON does, then checks
// them as the handler does.
func fuzzDecoder[T any](f *testing.F, validate func(*T) error, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var sh shapes
	f.Fuzz(func(t *testing.T, body []byte) {
		var v T
		err := sh.decodeStrict(body, &v)
		if err == nil {
			if !json.Valid(body) {
				t.Fatalf("%q: accepted, but it is not JSON", body)
			}
			if validate != nil {
				err = validate(&v)
			}
		}
		if err != nil {
			checkRefusal(t, body, err)
			checkAgainstEncodingJSON(t, body, err)
		}
	})
}

func FuzzCommitBody(f *testing.F) {
	fuzzDecoder(f, validateCommit,
		`{"offsets":[{"topic":"orders","partition":0,"offset":12,"metadata":"m"}],"member_id":"m-1","generation":5}`,
		`{"offsets":[{"topic":"orders","partition":1,"offset":0}]}`,
		`{"offsets":[{"topic":"t","partition":null,"offset":null}]}`, `{"Offsets":[]}`, `{"offsets":[{"offset":1,"offset":2}]}`)
}

func FuzzJoinBody(f *testing.F) {
	fuzzDecoder(f, validateJoin,
		`{"topics":["orders"],"client_id":"c1","session_timeout_ms":10000,"auto_offset_reset":"earliest","auto_commit":false,"assignor":"sticky"}`,
		`{"topics":["a","b"],"member_id":"g-h-1-x"}`, `{"topics":"t"}`, `{}`)
}

func FuzzResetBody(f *testing.F) {
	fuzzDecoder(f, validateReset,
		`{"topic":"orders","partitions":[0,2],"to":"shift","value":-3,"dry_run":false}`,
		`{"topic":"orders","to":"earliest"}`, `{"topic":"t","to":"timestamp","value":1763700000000}`)
}

func FuzzSeekBody(f *testing.F) {
	fuzzDecoder(f, validateSeek,
		`{"topic":"orders","partition":0,"offset":7}`, `{"to":"latest"}`, `{"topic":"t","timestamp":5}`)
}

func FuzzCreateTopicBody(f *testing.F) {
	fuzzDecoder[client.CreateTopicRequest](f, nil,
		`{"name":"orders","partitions":3,"replication_factor":3,"configs":{"retention.ms":"86400000"}}`,
		`{"name":"x"}`, `{"Name":"x"}`, `{"name":"a","name":"b"}`, `{"name":null}`)
}

func FuzzAlterTopicBody(f *testing.F) {
	fuzzDecoder[client.AlterTopicRequest](f, nil,
		`{"partitions":6}`, `{"configs":{"retention.ms":"3600000","x":null}}`, `{"partitions":1e3}`)
}

// The node-to-node join carries a registration.
func FuzzInternalJoinBody(f *testing.F) {
	fuzzDecoder[JoinRequest](f, nil,
		`{"id":2,"http_addr":"127.0.0.1:8083","raft_addr":"127.0.0.1:9094","rack":"a","incarnation":"x"}`, `{"id":null}`)
}

// Another node's read for a poll or a follow stream.
func FuzzInternalReadBody(f *testing.F) {
	fuzzDecoder(f, validateRead,
		`{"max_wait_ms":500,"max_bytes":1048576,"partitions":[{"topic":"orders","partition":2,"offset":17,"max_bytes":65536}]}`,
		`{"max_wait_ms":0,"max_bytes":1,"partitions":[]}`, `{"max_bytes":1,"partitions":[{"topic":"t"}]}`, `{"partitions":null}`)
}
