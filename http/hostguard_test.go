package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"weir/client"
)

func TestHostPolicy(t *testing.T) {
	cases := []struct {
		name        string
		listen, adv string
		configured  []string
		host        string
		want        bool
	}{
		{"loopback node: IP literal", "127.0.0.1:8082", "127.0.0.1:8082", nil, "127.0.0.1:8082", true},
		{"loopback node: IPv6 literal", "[::1]:8082", "[::1]:8082", nil, "[::1]:8082", true},
		{"loopback node: localhost", "127.0.0.1:8082", "127.0.0.1:8082", nil, "localhost:8082", true},
		{"loopback node: a .localhost name", "127.0.0.1:8082", "127.0.0.1:8082", nil, "weir.localhost", true},
		{"loopback node: a rebound name", "127.0.0.1:8082", "127.0.0.1:8082", nil, "attacker.example:8082", false},
		{"loopback node: no port", "127.0.0.1:8082", "127.0.0.1:8082", nil, "attacker.example", false},
		{"loopback node: its advertised name", "127.0.0.1:8082", "weir-1.lan:8082", nil, "WEIR-1.lan:8082", true},
		{"loopback node: a configured name", "127.0.0.1:8082", "127.0.0.1:8082", []string{"weir.internal"}, "weir.internal:8082", true},
		{"loopback node: configured, another name", "127.0.0.1:8082", "127.0.0.1:8082", []string{"weir.internal"}, "x.example", false},
		{"open node: any name", "0.0.0.0:8082", "10.0.0.1:8082", nil, "broker.example:8082", true},
		{"open node with names: only those", "0.0.0.0:8082", "10.0.0.1:8082", []string{"broker.example"}, "attacker.example", false},
		{"open node with names: a listed one", "0.0.0.0:8082", "10.0.0.1:8082", []string{"broker.example"}, "broker.example.", true},
		{"star", "127.0.0.1:8082", "127.0.0.1:8082", []string{"*"}, "anything.example", true},
		{"HTTP/1.0: no Host", "127.0.0.1:8082", "127.0.0.1:8082", nil, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := NewHostPolicy(c.listen, c.adv, c.configured).allows(c.host); got != c.want {
				t.Fatalf("Host %q: allowed=%v, want %v", c.host, got, c.want)
			}
		})
	}
}

// A page whose own name was rebound to the node's loopback address sends
// requests with its Host: they are refused before any handler runs, so it
// can neither read nor change anything.
func TestRequestsForAnotherHostAreRefused(t *testing.T) {
	b := newFakeBackend()
	srv := New(Options{Backend: b, Hosts: NewHostPolicy("127.0.0.1:8082", "127.0.0.1:8082", nil)})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	send := func(method, host, path string) (int, client.ErrorBody) {
		req, err := http.NewRequest(method, hs.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var eb client.ErrorBody
		_ = json.Unmarshal(data, &eb)
		return resp.StatusCode, eb
	}
	for _, r := range []struct{ method, path string }{{"GET", "/v1/topics"}, {"DELETE", "/v1/topics/orders"}, {"GET", "/v1/cluster"}} {
		st, eb := send(r.method, "attacker.example:8082", r.path)
		if st != http.StatusMisdirectedRequest || eb.ErrorCode != client.CodeMisdirectedRequest || eb.Message == "" {
			t.Errorf("%s %s with a foreign Host: %d %+v", r.method, r.path, st, eb)
		}
	}
	for _, host := range []string{"localhost:8082", "127.0.0.1:8082"} {
		if st, _ := send("GET", host, "/livez"); st != http.StatusOK {
			t.Fatalf("GET /livez with Host %s: %d", host, st)
		}
	}
}
