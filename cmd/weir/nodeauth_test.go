package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"weir/client"
	"weir/nodeauth"
)

// errorCode is the error_code of an error reply ("" if it is none).
func errorCode(body []byte) string {
	var eb client.ErrorBody
	if json.Unmarshal(body, &eb) != nil {
		return ""
	}
	return eb.ErrorCode
}

// metricLines are the /metrics lines of node n starting with prefix, sorted.
func (c *cluster) metricLines(n *node, prefix string) ([]string, error) {
	resp, err := c.hc.Get(n.url() + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, prefix) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	slices.Sort(out)
	return out, nil
}

// raftTerm is the highest Raft term any node reports.
func (c *cluster) raftTerm() uint64 {
	c.t.Helper()
	var term uint64
	for _, n := range c.live() {
		lines, err := c.metricLines(n, "weir_raft_term ")
		if err != nil || len(lines) != 1 {
			c.t.Fatalf("node %d: weir_raft_term: %q %v", n.id, lines, err)
		}
		var v float64
		if _, err := fmt.Sscanf(strings.TrimPrefix(lines[0], "weir_raft_term "), "%g", &v); err != nil {
			c.t.Fatalf("node %d: %q: %v", n.id, lines[0], err)
		}
		term = max(term, uint64(v))
	}
	return term
}

// tryState describes, as every node sees it, what a forged node-to-node
// call could change: the brokers (addresses, state, epoch, voter), the Raft
// configuration, and each topic's partitions (replicas, leader, leader
// epoch, ISR), except the topics in skip.
func (c *cluster) tryState(skip ...string) (string, error) {
	var b strings.Builder
	for _, n := range c.nodes {
		var cl client.Cluster
		if err := c.getJSON(n, "/v1/cluster", &cl); err != nil {
			return "", err
		}
		for _, br := range cl.Brokers {
			fmt.Fprintf(&b, "node %d: broker %d http %s raft %s %s voter=%v epoch %d\n", n.id, br.ID, br.HTTPAddr, br.RaftAddr, br.State, br.Voter, br.Epoch)
		}
		members, err := c.metricLines(n, "weir_raft_member{")
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "node %d: %s\n", n.id, strings.Join(members, " "))
		var topics client.TopicList
		if err := c.getJSON(n, "/v1/topics?internal=true", &topics); err != nil {
			return "", err
		}
		for _, ts := range topics.Topics {
			if slices.Contains(skip, ts.Name) {
				continue
			}
			var tp client.Topic
			if err := c.getJSON(n, "/v1/topics/"+url.PathEscape(ts.Name), &tp); err != nil {
				return "", err
			}
			for _, p := range tp.Partitions {
				isr := slices.Clone(p.ISR)
				slices.Sort(isr)
				fmt.Fprintf(&b, "node %d: %s/%d replicas %v leader %d epoch %d isr %v\n", n.id, ts.Name, p.Partition, p.Replicas, p.Leader, p.LeaderEpoch, isr)
			}
		}
	}
	return b.String(), nil
}

// TestOnlyNodesTalkToNodes: on a cluster of three real processes, a process
// without the cluster secret can neither register a broker, heartbeat, stop
// a broker, join, alter a partition's ISR, fetch as a follower, create the
// offsets topic nor read the node-to-node routes, records among them (401
// without a credential, 403 with another cluster's), nor reach Raft (hashicorp/raft's own
// transport, speaking raw Raft, is cut off), nor join with another secret;
// a join with a bad Raft address is refused even with the secret; and a
// client's Weir-Forwarded-By does not keep its produce from the leader.
// Afterwards brokers, Raft members, topics, leaders and ISRs are as before.
func TestOnlyNodesTalkToNodes(t *testing.T) {
	// A long session timeout: a loaded machine must not fence a broker
	// during the test, which would change the state compared at the end.
	c := startCluster(t, 3, "--broker-session-timeout-ms", "15000", "--broker-heartbeat-interval-ms", "500")
	ctrl := c.controller()
	c.createTopic("guarded", 3, 3, map[string]string{"min.insync.replicas": "2"})
	c.waitSettled(clusterAgreeTimeout, "guarded")
	c.mustProduce("guarded", nil, "before", 30, "all")
	var before string
	c.waitFor(clusterAgreeTimeout, "the cluster's state", func() error {
		var err error
		before, err = c.tryState()
		return err
	})
	termBefore := c.raftTerm()
	p0 := c.partitionInfo("guarded", 0)
	other, err := nodeauth.NewKeys("not-this-cluster's-secret")
	if err != nil {
		t.Fatal(err)
	}

	forged := []struct{ method, path, body string }{
		{"POST", "/internal/v1/brokers/register", `{"id":99,"http_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:2","incarnation":"forged"}`},
		{"POST", "/internal/v1/brokers/heartbeat", `{"id":99,"broker_epoch":1,"applied_index":1000000}`},
		{"POST", "/internal/v1/brokers/shutdown", fmt.Sprintf(`{"id":%d,"broker_epoch":0}`, p0.Leader)},
		{"POST", "/internal/v1/join", `{"id":98,"http_addr":"127.0.0.1:3","raft_addr":"127.0.0.1:4"}`},
		{"POST", "/internal/v1/alter-partition", fmt.Sprintf(`{"topic":"guarded","partition":0,"leader":%d,"leader_epoch":%d,"partition_epoch":0,"isr":[%d]}`,
			p0.Leader, p0.LeaderEpoch, p0.Leader)},
		{"POST", "/internal/v1/fetch", fmt.Sprintf(`{"replica_id":%d,"replica_epoch":0,"max_wait_ms":0,"max_bytes":1048576,"partitions":[{"topic":"guarded","partition":0,"fetch_offset":30,"leader_epoch":%d,"last_fetched_epoch":-1}]}`,
			(p0.Leader%3)+1, p0.LeaderEpoch)},
		{"POST", "/internal/v1/offsets-topic", `{}`},
		{"GET", "/internal/v1/groups", ""},
		{"GET", "/internal/v1/topics/guarded/offsets", ""},
		{"POST", "/internal/v1/read", `{"max_wait_ms":0,"max_bytes":1048576,"partitions":[{"topic":"guarded","partition":0,"offset":0,"max_bytes":1048576}]}`},
	}
	for _, n := range c.nodes {
		for _, f := range forged {
			ct := ""
			if f.body != "" {
				ct = "application/json"
			}
			st, body := call(t, f.method, n.url()+f.path, ct, []byte(f.body))
			if st != http.StatusUnauthorized || errorCode(body) != client.CodeNodeAuthenticationRequired {
				t.Errorf("node %d: %s %s without the secret: %d %s", n.id, f.method, f.path, st, body)
			}
			st, body = call(t, f.method, n.url()+f.path, ct, []byte(f.body), nodeauth.Header, other.HTTPToken())
			if st != http.StatusForbidden || errorCode(body) != client.CodeClusterAuthorizationFailed {
				t.Errorf("node %d: %s %s with another secret: %d %s", n.id, f.method, f.path, st, body)
			}
		}
	}

	// Raw Raft from a process without the secret: a forged leader of a later term.
	plain, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 3*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, n := range c.nodes {
		req := &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("99"), Addr: []byte("127.0.0.1:2")},
			Term:      termBefore + 100, LeaderCommitIndex: 0,
		}
		var resp raft.AppendEntriesResponse
		if err := plain.AppendEntries(raft.ServerID(itoa(n.id)), raft.ServerAddress(n.raftAddr), req, &resp); err == nil {
			t.Errorf("node %d answered a raw AppendEntries of a forged leader: %+v", n.id, resp)
		}
	}

	// A join with a Raft address no node could have, or another's, with the
	// secret: refused, to the controller and through another node.
	for _, n := range []*node{c.node(ctrl), c.node(ctrl%3 + 1)} {
		for _, body := range []string{
			`{"id":7,"http_addr":"127.0.0.1:1","raft_addr":"not-an-address"}`,
			`{"id":7,"http_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:0"}`,
			`{"id":7,"http_addr":"127.0.0.1:1","raft_addr":"0.0.0.0:9093"}`,
			fmt.Sprintf(`{"id":7,"http_addr":"127.0.0.1:1","raft_addr":%q}`, c.node(2).raftAddr),
			fmt.Sprintf(`{"id":7,"http_addr":%q,"raft_addr":"127.0.0.1:5"}`, c.node(2).httpAddr),
			`{"id":0,"http_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:5"}`,
		} {
			keys, err := nodeauth.NewKeys(c.secret)
			if err != nil {
				t.Fatal(err)
			}
			st, reply := call(t, "POST", n.url()+"/internal/v1/join", "application/json", []byte(body), nodeauth.Header, keys.HTTPToken())
			if st != http.StatusBadRequest || errorCode(reply) != client.CodeInvalidRequest {
				t.Errorf("node %d: join %s: %d %s", n.id, body, st, reply)
			}
		}
	}

	// A process with another secret that tries to join is refused and says why.
	joiner := &node{t: t, id: 4, dataDir: filepath.Join(t.TempDir(), "node-4"), httpAddr: freePort(t), raftAddr: freePort(t),
		logPath: filepath.Join(t.TempDir(), "node-4.log")}
	joiner.args = []string{"serve", "--node-id", "4", "--data-dir", joiner.dataDir, "--http-addr", joiner.httpAddr,
		"--raft-addr", joiner.raftAddr, "--join", c.node(1).url(), "--cluster-secret", "not-this-cluster's-secret"}
	t.Cleanup(joiner.kill)
	joiner.launch()
	pollUntil(t, clusterAgreeTimeout, "the joiner with another secret to be refused", func() error {
		if !strings.Contains(joiner.log(), "the cluster refused this node's credential") {
			return errors.New("not refused yet")
		}
		return nil
	})
	joiner.kill()

	// A client's Weir-Forwarded-By does not stop its produce at a non-leader.
	nonLeader := c.node(int(p0.Replicas[slices.IndexFunc(p0.Replicas, func(r int32) bool { return r != p0.Leader })]))
	st, body := call(t, "POST", nonLeader.url()+"/v1/topics/guarded/partitions/0/records", "application/json", []byte(`{"records":[{"value":"through"}]}`),
		"Weir-Forwarded-By", itoa(int(p0.Leader)), "Weir-Client-Addr", "6.6.6.6")
	if st != http.StatusOK {
		t.Fatalf("a produce with a client's Weir-Forwarded-By at a non-leader: %d %s", st, body)
	}

	// Raft still works, and every node has applied what came before.
	c.createTopic("after", 1, 3, nil)
	c.waitSettled(clusterAgreeTimeout, "after")
	var after string
	c.waitFor(clusterAgreeTimeout, "the cluster's state", func() error {
		var err error
		after, err = c.tryState("after")
		return err
	})
	if after != before {
		t.Fatalf("the cluster's state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if term := c.raftTerm(); term >= termBefore+100 {
		t.Fatalf("raft term %d: a forged leader's term (%d) was taken", term, termBefore+100)
	}
	for _, n := range c.nodes {
		if strings.Contains(n.log(), c.secret) {
			t.Fatalf("node %d logged the cluster secret", n.id)
		}
	}
	for _, n := range c.nodes { // raw Raft went to every node
		if !strings.Contains(n.log(), "refused a raft connection without the cluster credential") {
			t.Errorf("node %d did not log the refused raft connection:\n%s", n.id, n.log())
		}
	}
}

// TestServeNeedsTheClusterSecret: a voter of several, or a node that joins,
// refuses to start without the cluster secret, naming the key; a node that
// starts a cluster alone makes one (mode 0600) and keeps it across restarts.
func TestServeNeedsTheClusterSecret(t *testing.T) {
	raft1 := freePort(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"voter of three", []string{"--voters", "1@" + raft1 + ",2@" + freePort(t) + ",3@" + freePort(t), "--raft-addr", raft1}},
		{"joiner", []string{"--join", "http://" + freePort(t), "--raft-addr", freePort(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append([]string{"serve", "--node-id", "1", "--data-dir", t.TempDir(), "--http-addr", freePort(t)}, tc.args...)
			cmd := exec.CommandContext(ctx, weirBinary(t), args...)
			cmd.Env = append(os.Environ(), "WEIR_CLUSTER_SECRET=") // none from the test's environment
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("weir serve %q was still running after 60s (it must refuse to start):\n%s", tc.args, out.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(out.String(), "cluster_secret: is not set") {
				t.Fatalf("weir serve %q: %v\n%s", tc.args, err, out.String())
			}
		})
	}

	n := startNode(t)
	path := filepath.Join(n.dataDir, nodeauth.SecretFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("a node alone made no secret: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	secret, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n.stop()
	n.start()
	again, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(again, secret) {
		t.Fatalf("the secret changed across a restart (%v)", err)
	}
	if strings.Contains(n.log(), strings.TrimSpace(string(secret))) {
		t.Fatal("the node logged its secret")
	}
}
