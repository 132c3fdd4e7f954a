package server

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// load runs LoadConfig the way `weir serve` does: flags parsed from args,
// env from a map.
func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fset := pflag.NewFlagSet("test", pflag.ContinueOnError)
	AddFlags(fset)
	if err := fset.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return LoadConfig(fset, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "weir.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func yamlKeys(t *testing.T) []string {
	t.Helper()
	typ := reflect.TypeFor[Config]()
	keys := make([]string, 0, typ.NumField())
	for f := range typ.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			t.Fatalf("Config.%s has no yaml key", f.Name)
		}
		keys = append(keys, tag)
	}
	return keys
}

func TestDefaultsAreValid(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if err := def.Resolved().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Resolved().Validate() = %v", err)
	}
	got, err := LoadConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := def.Resolved()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadConfig with nothing set = %+v, want %+v", got, want)
	}
	if want.AdvertiseHTTPAddr != "127.0.0.1:8082" || !reflect.DeepEqual(want.Voters, []Voter{{1, "127.0.0.1:9093"}}) {
		t.Fatalf("Resolved defaults: advertise %q voters %v", want.AdvertiseHTTPAddr, want.Voters)
	}
}

// The option table must cover exactly the Config fields, in order, and its
// text form must round-trip, or a key would be missing from flags and env.
func TestOptionsMatchConfigFields(t *testing.T) {
	var optKeys []string
	for _, o := range options() {
		optKeys = append(optKeys, o.key)
	}
	if want := yamlKeys(t); !slices.Equal(optKeys, want) {
		t.Fatalf("option keys %v\nConfig yaml keys %v", optKeys, want)
	}

	fset := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddFlags(fset)
	def := DefaultConfig()
	for _, o := range options() {
		f := fset.Lookup(FlagName(o.key))
		if f == nil {
			t.Fatalf("no flag --%s", FlagName(o.key))
		}
		if f.DefValue != o.get(&def) {
			t.Errorf("--%s default %q, want %q", f.Name, f.DefValue, o.get(&def))
		}
		var c Config
		if err := o.set(&c, o.get(&def)); err != nil {
			t.Errorf("%s: set(get(default)): %v", o.key, err)
		}
		if o.get(&c) != o.get(&def) {
			t.Errorf("%s: round trip %q -> %q", o.key, o.get(&def), o.get(&c))
		}
	}
	if EnvName("node_id") != "WEIR_NODE_ID" || FlagName("node_id") != "node-id" {
		t.Fatal("naming of env vars or flags changed")
	}
}

// config.example.yaml is the documentation of every key; it must not drift.
func TestExampleFileIsDefaults(t *testing.T) {
	const path = "../config.example.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Config // zero, so a key missing from the file shows as a difference
	if err := decodeYAML(&got, data, path, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("config.example.yaml parses to\n%+v\nDefaultConfig() is\n%+v", got, want)
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	root := doc.Content[0]
	for i := 0; i < len(root.Content); i += 2 {
		k := root.Content[i]
		inFile[k.Value] = true
		if strings.TrimSpace(k.HeadComment) == "" {
			t.Errorf("config.example.yaml line %d: %s has no comment saying what it does", k.Line, k.Value)
		}
	}
	for _, k := range yamlKeys(t) {
		if !inFile[k] {
			t.Errorf("config.example.yaml lacks %s", k)
		}
	}
}

func TestPrecedence(t *testing.T) {
	type layer struct{ file, env, flag string } // "" = not set at that layer
	cases := []struct {
		key  string
		vals layer
		get  func(Config) any
		def  any
		want [3]any // value of file, env, flag as they would parse
	}{
		{"node_id", layer{"2", "3", "4"}, func(c Config) any { return c.NodeID }, int32(1), [3]any{int32(2), int32(3), int32(4)}},
		{"log_level", layer{"debug", "warn", "error"}, func(c Config) any { return c.LogLevel }, "info", [3]any{"debug", "warn", "error"}},
		{"log_retention_ms", layer{"1000", "-1", "5"}, func(c Config) any { return c.LogRetentionMs }, int64(604800000), [3]any{int64(1000), int64(-1), int64(5)}},
		{"auto_leader_rebalance_enable", layer{"false", "true", "false"}, func(c Config) any { return c.AutoLeaderRebalanceEnable }, true, [3]any{false, true, false}},
		{"http_addr", layer{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"}, func(c Config) any { return c.HTTPAddr }, "127.0.0.1:8082", [3]any{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"}},
		{"join", layer{"http://a:1", "http://b:2", "http://c:3,http://d:4"}, func(c Config) any { return c.Join }, []string(nil),
			[3]any{[]string{"http://a:1"}, []string{"http://b:2"}, []string{"http://c:3", "http://d:4"}}},
	}
	for _, tc := range cases {
		// Each combination of layers; the highest one set must win.
		for mask := range 8 {
			useFile, useEnv, useFlag := mask&1 != 0, mask&2 != 0, mask&4 != 0
			env := map[string]string{}
			var args []string
			if useFile {
				env[ConfigFileEnv] = writeYAML(t, tc.key+": "+tc.vals.file+"\n")
			}
			if useEnv {
				env[EnvName(tc.key)] = tc.vals.env
			}
			if useFlag {
				args = append(args, "--"+FlagName(tc.key)+"="+tc.vals.flag)
			}
			want := tc.def
			switch {
			case useFlag:
				want = tc.want[2]
			case useEnv:
				want = tc.want[1]
			case useFile:
				want = tc.want[0]
			}
			cfg, err := load(t, args, env)
			if err != nil {
				t.Fatalf("%s file=%v env=%v flag=%v: %v", tc.key, useFile, useEnv, useFlag, err)
			}
			if got := tc.get(cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("%s file=%v env=%v flag=%v: got %#v, want %#v", tc.key, useFile, useEnv, useFlag, got, want)
			}
		}
	}
}

func TestPrecedenceDetails(t *testing.T) {
	// A flag set to the default still beats env and file: it was given.
	file := writeYAML(t, "num_partitions: 3\n")
	cfg, err := load(t, []string{"--num-partitions", "1", "--config", file}, map[string]string{"WEIR_NUM_PARTITIONS": "2"})
	if err != nil || cfg.NumPartitions != 1 {
		t.Fatalf("got %d, %v; want 1", cfg.NumPartitions, err)
	}
	// --config beats WEIR_CONFIG.
	other := writeYAML(t, "num_partitions: 7\n")
	cfg, err = load(t, []string{"--config", file}, map[string]string{ConfigFileEnv: other})
	if err != nil || cfg.NumPartitions != 3 {
		t.Fatalf("got %d, %v; want 3 from --config", cfg.NumPartitions, err)
	}
	// A bare bool flag means true.
	cfg, err = load(t, []string{"--unclean-leader-election-enable"}, nil)
	if err != nil || !cfg.UncleanLeaderElectionEnable {
		t.Fatalf("bare bool flag: %v, %v", cfg.UncleanLeaderElectionEnable, err)
	}
	// Keys the file does not set keep their defaults; derived ones follow.
	cfg, err = load(t, nil, map[string]string{ConfigFileEnv: writeYAML(t, "http_addr: 10.0.0.1:80\nraft_addr: 10.0.0.1:90\nnode_id: 5\n")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdvertiseHTTPAddr != "10.0.0.1:80" || !reflect.DeepEqual(cfg.Voters, []Voter{{5, "10.0.0.1:90"}}) || cfg.DataDir != "./weir-data" {
		t.Fatalf("derived defaults: %+v", cfg)
	}
}

func TestBadValuesNameTheirKey(t *testing.T) {
	cases := []struct {
		name    string
		args    []string          // flags
		env     map[string]string // env vars
		yaml    string            // config file body, if any
		key     string            // the key the error must name
		source  string            // where it must say the value came from ("" = do not check)
		msgPart string
	}{
		{name: "node id zero", args: []string{"--node-id", "0"}, key: "node_id", source: "--node-id", msgPart: "got 0"},
		{name: "node id negative env", env: map[string]string{"WEIR_NODE_ID": "-3"}, key: "node_id", source: "WEIR_NODE_ID"},
		{name: "node id too big", args: []string{"--node-id", "2147483648"}, key: "node_id", msgPart: "out of range"},
		{name: "node id not a number", yaml: "node_id: one\n", key: "node_id", source: "line 1", msgPart: "not an integer"},
		{name: "empty data dir", args: []string{"--data-dir", ""}, key: "data_dir"},
		{name: "http addr no port", args: []string{"--http-addr", "foo"}, key: "http_addr", msgPart: `"foo" is not host:port`},
		{name: "http addr bad port", env: map[string]string{"WEIR_HTTP_ADDR": "127.0.0.1:70000"}, key: "http_addr", msgPart: "1 to 65535"},
		{name: "http addr url", args: []string{"--http-addr", "http://x:80"}, key: "http_addr"},
		{name: "raft addr port zero", args: []string{"--raft-addr", "127.0.0.1:0"}, key: "raft_addr"},
		{name: "wildcard http without advertise", args: []string{"--http-addr", "0.0.0.0:8082"}, key: "advertise_http_addr", source: ""},
		{name: "advertise wildcard", args: []string{"--advertise-http-addr", "0.0.0.0:8082"}, key: "advertise_http_addr"},
		{name: "wildcard raft alone", args: []string{"--raft-addr", ":9093"}, key: "raft_addr"},
		{name: "voters syntax", args: []string{"--voters", "1@a:1,b:2"}, key: "voters", source: "--voters", msgPart: "id@host:port"},
		{name: "voters empty entry", args: []string{"--voters", "1@a:1,"}, key: "voters", msgPart: "empty entry"},
		{name: "voters duplicate id", args: []string{"--voters", "1@a:1,1@b:2"}, key: "voters", msgPart: "more than once"},
		{name: "voters duplicate addr", args: []string{"--voters", "1@a:1,2@a:1"}, key: "voters", msgPart: "more than once"},
		{name: "voters id zero", yaml: "voters: [0@a:1, 1@b:1]\n", key: "voters", msgPart: "1 or more"},
		{name: "node not among voters", args: []string{"--node-id", "4", "--voters", "1@a:1,2@b:1,3@c:1"}, key: "voters", msgPart: "node_id 4"},
		{name: "voter addr bad port", args: []string{"--voters", "1@a:x"}, key: "voters"},
		{name: "join not a url", args: []string{"--join", "a:8082"}, key: "join", msgPart: "http://host:port"},
		{name: "join path", args: []string{"--join", "http://a:8082/v1"}, key: "join"},
		{name: "log level", env: map[string]string{"WEIR_LOG_LEVEL": "verbose"}, key: "log_level", source: "WEIR_LOG_LEVEL", msgPart: "debug, info, warn, error"},
		{name: "log format", args: []string{"--log-format", "xml"}, key: "log_format"},
		{name: "fsync", yaml: "fsync: sometimes\n", key: "fsync", source: "line 1"},
		{name: "num partitions", args: []string{"--num-partitions", "0"}, key: "num_partitions"},
		{name: "replication factor", args: []string{"--default-replication-factor", "40000"}, key: "default_replication_factor"},
		{name: "min isr", args: []string{"--min-insync-replicas", "0"}, key: "min_insync_replicas"},
		{name: "retention ms", args: []string{"--log-retention-ms", "-2"}, key: "log_retention_ms"},
		{name: "retention bytes", args: []string{"--log-retention-bytes", "-5"}, key: "log_retention_bytes"},
		{name: "segment bytes zero", args: []string{"--log-segment-bytes", "0"}, key: "log_segment_bytes"},
		{name: "segment bytes too big", args: []string{"--log-segment-bytes", "4294967296"}, key: "log_segment_bytes"},
		{name: "segment ms", args: []string{"--log-segment-ms", "0"}, key: "log_segment_ms"},
		{name: "index interval", args: []string{"--log-index-interval-bytes", "-1"}, key: "log_index_interval_bytes"},
		{name: "cleanup policy", args: []string{"--log-cleanup-policy", "shred"}, key: "log_cleanup_policy"},
		{name: "delete retention", args: []string{"--log-delete-retention-ms", "-1"}, key: "log_delete_retention_ms"},
		{name: "message max bytes", args: []string{"--message-max-bytes", "0"}, key: "message_max_bytes"},
		{name: "message bigger than request", args: []string{"--message-max-bytes", "2000000", "--max-request-bytes", "1000000"}, key: "message_max_bytes", msgPart: "max_request_bytes"},
		{name: "timestamp type", args: []string{"--message-timestamp-type", "createtime"}, key: "message_timestamp_type"},
		{name: "bool", args: []string{"--unclean-leader-election-enable=maybe"}, key: "unclean_leader_election_enable", msgPart: "true or false"},
		{name: "bool yaml", yaml: "auto_leader_rebalance_enable: sure\n", key: "auto_leader_rebalance_enable"},
		{name: "max request bytes", args: []string{"--max-request-bytes", "0"}, key: "max_request_bytes"},
		{name: "retention check interval", args: []string{"--log-retention-check-interval-ms", "0"}, key: "log_retention_check_interval_ms"},
		{name: "flush interval", args: []string{"--log-flush-interval-ms", "0"}, key: "log_flush_interval_ms"},
		{name: "heartbeat", args: []string{"--broker-heartbeat-interval-ms", "0"}, key: "broker_heartbeat_interval_ms"},
		{name: "session not above heartbeat", env: map[string]string{"WEIR_BROKER_SESSION_TIMEOUT_MS": "500"}, key: "broker_session_timeout_ms", source: "WEIR_BROKER_SESSION_TIMEOUT_MS", msgPart: "broker_heartbeat_interval_ms"},
		{name: "lag time", args: []string{"--replica-lag-time-max-ms", "0"}, key: "replica_lag_time_max_ms"},
		{name: "fetch wait negative", args: []string{"--replica-fetch-wait-max-ms", "-1"}, key: "replica_fetch_wait_max_ms"},
		{name: "fetch wait above lag", args: []string{"--replica-fetch-wait-max-ms", "20000"}, key: "replica_fetch_wait_max_ms", msgPart: "replica_lag_time_max_ms"},
		{name: "fetch wait above request timeout", args: []string{"--replica-lag-time-max-ms", "60000", "--replica-fetch-wait-max-ms", "40000"}, key: "replica_fetch_wait_max_ms", msgPart: "request_timeout_ms"},
		{name: "groups offsets partitions", args: []string{"--groups-offsets-partitions", "0"}, key: "groups_offsets_partitions"},
		{name: "request timeout", args: []string{"--request-timeout-ms", "0"}, key: "request_timeout_ms"},
		{name: "shutdown timeout", args: []string{"--shutdown-timeout-ms", "0"}, key: "shutdown_timeout_ms"},
		{name: "cluster secret short", env: map[string]string{"WEIR_CLUSTER_SECRET": "short"}, key: "cluster_secret", source: "WEIR_CLUSTER_SECRET", msgPart: "at least 16"},
		{name: "trusted proxies", args: []string{"--trusted-proxies", "10.0.0.0/8,proxy.example"}, key: "trusted_proxies", msgPart: `"proxy.example" is neither a CIDR`},
		{name: "trusted proxies bad mask", yaml: "trusted_proxies: [10.0.0.0/40]\n", key: "trusted_proxies"},
		{name: "read timeout", args: []string{"--http-read-timeout-ms", "0"}, key: "http_read_timeout_ms"},
		{name: "write timeout not above request timeout", args: []string{"--http-write-timeout-ms", "30000"}, key: "http_write_timeout_ms", msgPart: "request_timeout_ms"},
		{name: "idle timeout", args: []string{"--http-idle-timeout-ms", "0"}, key: "http_idle_timeout_ms"},
		{name: "max idle conns", args: []string{"--http-max-idle-conns", "0"}, key: "http_max_idle_conns"},
		{name: "unknown yaml key", yaml: "node_id: 1\nnode_idd: 2\n", key: "node_idd", source: "line 2", msgPart: "did you mean node_id?"},
		{name: "kafka-style yaml key", yaml: "log.retention.ms: 5\n", key: "log.retention.ms", msgPart: "did you mean log_retention_ms?"},
		{name: "duplicate yaml key", yaml: "node_id: 1\nnode_id: 2\n", key: "node_id", source: "line 2", msgPart: "set twice"},
		{name: "list for scalar key", yaml: "node_id: [1, 2]\n", key: "node_id", msgPart: "single value"},
		{name: "yaml syntax", yaml: "node_id: 1\n  bad: [\n", key: "config"},
		{name: "yaml not a mapping", yaml: "- node_id\n", key: "config", msgPart: "top level"},
		{name: "two yaml documents", yaml: "node_id: 1\n---\nnode_id: 2\n", key: "config", msgPart: "more than one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.yaml != "" {
				env[ConfigFileEnv] = writeYAML(t, tc.yaml)
			}
			_, err := load(t, tc.args, env)
			if err == nil {
				t.Fatal("no error")
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %v (%T) is not a *KeyError", err, err)
			}
			msg := err.Error()
			if ke.Key != tc.key || !strings.HasPrefix(msg, tc.key+": ") {
				t.Fatalf("error %q names %q, want %q", msg, ke.Key, tc.key)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error is more than one line: %q", msg)
			}
			if tc.source != "" && !strings.Contains(ke.Source, tc.source) {
				t.Fatalf("error %q: source %q, want it to contain %q", msg, ke.Source, tc.source)
			}
			if !strings.Contains(msg, tc.msgPart) {
				t.Fatalf("error %q lacks %q", msg, tc.msgPart)
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		source string
	}{
		{[]string{"--config", missing}, nil, "--config"},
		{nil, map[string]string{ConfigFileEnv: missing}, ConfigFileEnv},
	} {
		_, err := load(t, tc.args, tc.env)
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != "config" || ke.Source != tc.source || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want a config error from %s wrapping ErrNotExist", err, tc.source)
		}
		if !strings.Contains(err.Error(), missing) {
			t.Fatalf("error %q does not name the file", err)
		}
	}
}

func TestEmptyConfigFile(t *testing.T) {
	for _, body := range []string{"", "# only a comment\n"} {
		cfg, err := load(t, []string{"--config", writeYAML(t, body)}, nil)
		if err != nil || !reflect.DeepEqual(cfg, DefaultConfig().Resolved()) {
			t.Fatalf("body %q: %v, %+v", body, err, cfg)
		}
	}
}

func TestVotersAndJoinParsing(t *testing.T) {
	three := []Voter{{1, "10.0.0.1:9093"}, {2, "10.0.0.2:9093"}, {3, "node-3.example:9093"}}
	cases := []struct {
		name   string
		args   []string
		yaml   string
		voters []Voter
		join   []string
	}{
		{name: "flag list with spaces", args: []string{"--voters", "1@10.0.0.1:9093, 2@10.0.0.2:9093 ,3@node-3.example:9093"}, voters: three},
		{name: "yaml string", yaml: "voters: 1@10.0.0.1:9093,2@10.0.0.2:9093,3@node-3.example:9093\n", voters: three},
		{name: "yaml list", yaml: "voters:\n  - 1@10.0.0.1:9093\n  - 2@10.0.0.2:9093\n  - 3@node-3.example:9093\n", voters: three},
		{name: "ipv6 voter", args: []string{"--voters", "1@[::1]:9093"}, voters: []Voter{{1, "[::1]:9093"}}},
		{name: "this node alone", voters: []Voter{{1, "127.0.0.1:9093"}}},
		{name: "join only", args: []string{"--join", "http://10.0.0.1:8082, https://b.example:8443/"},
			join: []string{"http://10.0.0.1:8082", "https://b.example:8443"}},
		{name: "join yaml list", yaml: "join: [http://a:1, http://b:2]\n", join: []string{"http://a:1", "http://b:2"}},
		// A node outside the voters list may join as a non-voter.
		{name: "join with voters", args: []string{"--node-id", "4", "--voters", "1@10.0.0.1:9093,2@10.0.0.2:9093,3@node-3.example:9093", "--join", "http://10.0.0.1:8082"},
			voters: three, join: []string{"http://10.0.0.1:8082"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				args = append(args, "--config", writeYAML(t, tc.yaml))
			}
			cfg, err := load(t, args, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Voters, tc.voters) || !reflect.DeepEqual(cfg.Join, tc.join) {
				t.Fatalf("voters %v join %q; want %v %q", cfg.Voters, cfg.Join, tc.voters, tc.join)
			}
		})
	}
}

func TestRaftAdvertiseAddr(t *testing.T) {
	// Binding every interface is fine when the voters entry says how to dial us.
	cfg, err := load(t, []string{"--node-id", "2", "--raft-addr", "0.0.0.0:9093", "--voters", "1@h1:9093,2@h2:9093,3@h3:9093"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RaftAdvertiseAddr(); got != "h2:9093" {
		t.Fatalf("RaftAdvertiseAddr = %q, want h2:9093", got)
	}
	cfg, err = load(t, []string{"--join", "http://h1:8082", "--raft-addr", "h9:9093"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RaftAdvertiseAddr(); got != "h9:9093" || cfg.Voters != nil {
		t.Fatalf("joining: RaftAdvertiseAddr = %q, voters %v", got, cfg.Voters)
	}
}

func TestResolvedIsIdempotent(t *testing.T) {
	c := DefaultConfig()
	c.HTTPAddr = "10.1.1.1:8082"
	once := c.Resolved()
	if twice := once.Resolved(); !reflect.DeepEqual(once, twice) {
		t.Fatalf("Resolved twice differs: %+v vs %+v", once, twice)
	}
	c.AdvertiseHTTPAddr = "public.example:443"
	if got := c.Resolved().AdvertiseHTTPAddr; got != "public.example:443" {
		t.Fatalf("explicit advertise overwritten: %q", got)
	}
}

func TestTopicDefaults(t *testing.T) {
	c := DefaultConfig()
	c.LogRetentionMs = -1
	c.UncleanLeaderElectionEnable = true
	c.LogCleanupPolicy = "compact"
	want := map[string]string{
		"retention.ms":                   "-1",
		"retention.bytes":                "-1",
		"segment.bytes":                  "1073741824",
		"segment.ms":                     "604800000",
		"cleanup.policy":                 "compact",
		"min.insync.replicas":            "1",
		"max.message.bytes":              "1048588",
		"message.timestamp.type":         "CreateTime",
		"unclean.leader.election.enable": "true",
		"index.interval.bytes":           "4096",
		"delete.retention.ms":            "86400000",
	}
	if got := c.TopicDefaults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("TopicDefaults = %v\nwant %v", got, want)
	}
}

// yaml.Marshal of a Config is a file LoadConfig reads back to the same
// config, so a node can print its effective config.
func TestYAMLRoundTrip(t *testing.T) {
	c := DefaultConfig()
	c.NodeID = 2
	c.Voters = []Voter{{1, "h1:9093"}, {2, "h2:9093"}}
	c.Join = []string{"http://h1:8082"}
	c.BrokerRack = "eu-1a"
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := decodeYAML(&back, out, "marshalled", map[string]string{}); err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip:\n%+v\n%+v\n%s", back, c, out)
	}
}

// TestClusterSecretAndProxies: the secret is taken as given and never
// repeated in an error; trusted proxies take CIDRs and single IPs.
func TestClusterSecretAndProxies(t *testing.T) {
	const secret = "a-perfectly-fine-cluster-secret"
	cfg, err := load(t, []string{"--trusted-proxies", "10.0.0.0/8, 192.168.1.7,::1"}, map[string]string{"WEIR_CLUSTER_SECRET": secret})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterSecret != secret {
		t.Fatalf("cluster_secret %q", cfg.ClusterSecret)
	}
	nets, err := parseTrustedProxies(cfg.TrustedProxies)
	if err != nil || len(nets) != 3 {
		t.Fatalf("trusted proxies %v: %v", nets, err)
	}
	for i, ip := range []string{"10.200.1.2", "192.168.1.7", "::1"} {
		if !nets[i].Contains(net.ParseIP(ip)) {
			t.Errorf("%v does not contain %s", nets[i], ip)
		}
	}
	if nets[1].Contains(net.ParseIP("192.168.1.8")) {
		t.Errorf("a single IP %v takes its neighbour", nets[1])
	}
	const weak = "weak-secret"
	_, err = load(t, []string{"--cluster-secret", weak}, nil)
	if err == nil || strings.Contains(err.Error(), weak) {
		t.Fatalf("a short secret: %v (must be refused without repeating it)", err)
	}
}
