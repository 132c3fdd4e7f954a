package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"weir/client"
)

// A header value that is not UTF-8 comes back in headers_b64 and goes in
// the same way: what a consumer reads, a producer can write again.
func TestHeadersB64RoundTrip(t *testing.T) {
	n := startTestNode(t, nil)
	n.must(t, 201, "POST", "/v1/topics", `{"name":"h","partitions":1}`)
	bin := base64.StdEncoding.EncodeToString([]byte{0xfa, 0x00, 0xff})
	n.must(t, 200, "POST", "/v1/topics/h/records",
		`{"records":[{"value":"v","headers":{"txt":"plain"},"headers_b64":{"bin":"`+bin+`"}}]}`)
	var got struct {
		Records []client.ConsumedRecord `json:"records"`
	}
	if err := json.Unmarshal(n.must(t, 200, "GET", "/v1/topics/h/partitions/0/records?offset=0", ""), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 || got.Records[0].HeadersB64["bin"] != bin || got.Records[0].Headers["txt"] != "plain" {
		t.Fatalf("read back: %+v", got.Records)
	}

	for _, c := range []struct{ body, want string }{
		{`{"records":[{"value":"v","headers":{"k":"a"},"headers_b64":{"k":"YQ=="}}]}`, "given twice"},
		{`{"records":[{"value":"v","headers_b64":{"k":"not base64!"}}]}`, "not valid base64"},
		{`{"records":[{"value":"v","headers_b64":{"k":1}}]}`, "expected a string"},
	} {
		st, data, _ := n.send(t, "POST", "/v1/topics/h/records", "application/json", c.body)
		var eb client.ErrorBody
		_ = json.Unmarshal(data, &eb)
		if st != 400 || !strings.Contains(eb.Message, c.want) || !strings.Contains(eb.Message, "records[0]") {
			t.Errorf("%s: %d %s, want 400 naming %q", c.body, st, data, c.want)
		}
	}
}
