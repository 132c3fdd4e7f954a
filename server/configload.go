package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Loading: one table (options) drives the flags, the environment variables
// and the YAML keys, so the three cannot drift apart. Every value travels as
// text through the same parser, whichever source it came from, so a bad value
// reads the same everywhere.

// EnvPrefix starts every environment variable: WEIR_<KEY IN UPPER CASE>.
const EnvPrefix = "WEIR_"

// ConfigFileFlag and ConfigFileEnv name the YAML file to load.
const (
	ConfigFileFlag = "config"
	ConfigFileEnv  = EnvPrefix + "CONFIG"
)

// option is one setting: its key, help and how to read and write it as text.
type option struct {
	key  string
	typ  string // placeholder shown in --help
	help string
	list bool // YAML may give a sequence, read as a comma list
	get  func(*Config) string
	set  func(*Config, string) error // the error says what is wrong, without the key
}

// FlagName is the flag for a key: node_id -> node-id.
func FlagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// EnvName is the environment variable for a key: node_id -> WEIR_NODE_ID.
func EnvName(key string) string { return EnvPrefix + strings.ToUpper(key) }

// options lists every setting in the order of the Config fields. The help
// strings are the comments in config.example.yaml and the --help text.
func options() []option {
	return []option{
		intOpt("node_id", "this node's broker id, unique in the cluster (1 or more)", func(c *Config) *int32 { return &c.NodeID }),
		strOpt("data_dir", "path", "directory for the partition logs, checkpoints and Raft state", func(c *Config) *string { return &c.DataDir }),
		strOpt("http_addr", "host:port", "address the REST API listens on", func(c *Config) *string { return &c.HTTPAddr }),
		strOpt("raft_addr", "host:port", "address the Raft transport listens on", func(c *Config) *string { return &c.RaftAddr }),
		strOpt("advertise_http_addr", "host:port", "REST address other nodes and clients are told; empty means http_addr", func(c *Config) *string { return &c.AdvertiseHTTPAddr }),
		votersOpt(),
		joinOpt(),
		strOpt("broker_rack", "string", "rack (or zone) of this node, used to spread replicas; empty means none", func(c *Config) *string { return &c.BrokerRack }),
		strOpt("cluster_secret", "secret", "the secret every node of the cluster shares and proves to the others (Raft, node-to-node calls); empty means <data_dir>/cluster-secret, which a node that starts a cluster alone creates", func(c *Config) *string { return &c.ClusterSecret }),
		listOpt("http_allowed_hosts", "name,...", "host names the API answers to besides IP addresses, localhost and the advertised name (\"*\": any); empty answers any name unless http_addr is loopback (a guard against DNS rebinding)", func(c *Config) *[]string { return &c.HTTPAllowedHosts }),
		listOpt("trusted_proxies", "cidr,...", "proxies (CIDRs or IPs) whose X-Forwarded-For names the client; empty means the client is the direct peer", func(c *Config) *[]string { return &c.TrustedProxies }),
		strOpt("log_level", "level", "log level: debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		strOpt("log_format", "format", "log format on stderr: text or json", func(c *Config) *string { return &c.LogFormat }),
		strOpt("fsync", "policy", "always: acks=all writes are fsynced (group commit) before they count; never: leave flushing to the OS", func(c *Config) *string { return &c.Fsync }),
		intOpt("num_partitions", "partitions of a new topic that does not say", func(c *Config) *int32 { return &c.NumPartitions }),
		intOpt("max_partitions_per_request", "most partitions one topic create or alter may add (each is a log to create on every replica)", func(c *Config) *int32 { return &c.MaxPartitionsPerRequest }),
		intOpt("default_replication_factor", "replication factor of a new topic that does not say", func(c *Config) *int32 { return &c.DefaultReplicationFactor }),
		intOpt("min_insync_replicas", "in-sync replicas an acks=all write needs (topic default, min.insync.replicas)", func(c *Config) *int32 { return &c.MinInsyncReplicas }),
		intOpt("log_retention_ms", "delete segments older than this; -1 keeps them forever (retention.ms)", func(c *Config) *int64 { return &c.LogRetentionMs }),
		intOpt("log_retention_bytes", "delete the oldest segments while a partition is bigger than this; -1 is unlimited (retention.bytes)", func(c *Config) *int64 { return &c.LogRetentionBytes }),
		intOpt("log_segment_bytes", "roll to a new segment at this size (segment.bytes)", func(c *Config) *int64 { return &c.LogSegmentBytes }),
		intOpt("log_segment_ms", "roll to a new segment after this long (segment.ms)", func(c *Config) *int64 { return &c.LogSegmentMs }),
		intOpt("log_index_interval_bytes", "bytes of records between two offset index entries (index.interval.bytes)", func(c *Config) *int64 { return &c.LogIndexIntervalBytes }),
		strOpt("log_cleanup_policy", "policy", "delete, compact or compact,delete (cleanup.policy)", func(c *Config) *string { return &c.LogCleanupPolicy }),
		intOpt("log_delete_retention_ms", "how long tombstones survive compaction (delete.retention.ms)", func(c *Config) *int64 { return &c.LogDeleteRetentionMs }),
		intOpt("message_max_bytes", "largest record batch a topic accepts (max.message.bytes)", func(c *Config) *int64 { return &c.MessageMaxBytes }),
		strOpt("message_timestamp_type", "type", "CreateTime (the producer's) or LogAppendTime (the broker's) (message.timestamp.type)", func(c *Config) *string { return &c.MessageTimestampType }),
		boolOpt("unclean_leader_election_enable", "allow a leader from outside the ISR, trading lost writes for availability (unclean.leader.election.enable)", func(c *Config) *bool { return &c.UncleanLeaderElectionEnable }),
		intOpt("max_request_bytes", "largest HTTP request body the API accepts", func(c *Config) *int64 { return &c.MaxRequestBytes }),
		intOpt("max_request_records", "most records one produce request may hold", func(c *Config) *int32 { return &c.MaxRequestRecords }),
		intOpt("log_retention_check_interval_ms", "how often retention looks for segments to delete", func(c *Config) *int64 { return &c.LogRetentionCheckIntervalMs }),
		intOpt("log_flush_interval_ms", "how often logs are flushed to disk in the background (what fsync: never relies on)", func(c *Config) *int64 { return &c.LogFlushIntervalMs }),
		intOpt("log_cleaner_backoff_ms", "how often compacted topics are checked for work", func(c *Config) *int64 { return &c.LogCleanerBackoffMs }),
		intOpt("log_cleaner_threads", "how many logs are compacted at once (log.cleaner.threads)", func(c *Config) *int32 { return &c.LogCleanerThreads }),
		intOpt("log_max_open_files", "segment files kept open at once across the data dir; idle ones close and reopen when used; 0 means half the open-files limit (RLIMIT_NOFILE)", func(c *Config) *int64 { return &c.LogMaxOpenFiles }),
		intOpt("broker_heartbeat_interval_ms", "how often this node heartbeats the controller", func(c *Config) *int64 { return &c.BrokerHeartbeatIntervalMs }),
		intOpt("broker_session_timeout_ms", "a node silent this long is fenced: it leaves every ISR and loses its leaderships", func(c *Config) *int64 { return &c.BrokerSessionTimeoutMs }),
		intOpt("replica_lag_time_max_ms", "a follower not caught up for this long leaves the ISR", func(c *Config) *int64 { return &c.ReplicaLagTimeMaxMs }),
		intOpt("replica_fetch_wait_max_ms", "how long a follower's fetch waits at the leader for new data", func(c *Config) *int64 { return &c.ReplicaFetchWaitMaxMs }),
		boolOpt("auto_leader_rebalance_enable", "move leadership back to each partition's preferred replica when it is in sync", func(c *Config) *bool { return &c.AutoLeaderRebalanceEnable }),
		intOpt("leader_imbalance_check_interval_ms", "how often the controller moves leaderships back to preferred replicas (with auto_leader_rebalance_enable)", func(c *Config) *int64 { return &c.LeaderImbalanceCheckIntervalMs }),
		intOpt("groups_offsets_partitions", "partitions of __consumer_offsets (fixed once the topic exists)", func(c *Config) *int32 { return &c.GroupsOffsetsPartitions }),
		intOpt("groups_offsets_segment_bytes", "segment size of __consumer_offsets: compaction cleans closed segments, so smaller keeps it smaller (fixed once the topic exists)", func(c *Config) *int64 { return &c.GroupsOffsetsSegmentBytes }),
		intOpt("request_timeout_ms", "how long a request, forwarded or waiting for acks=all, may take before REQUEST_TIMED_OUT (a forwarded read or produce: its wait_ms or timeout_ms on top)", func(c *Config) *int64 { return &c.RequestTimeoutMs }),
		intOpt("shutdown_timeout_ms", "how long a clean shutdown may take before the process exits anyway", func(c *Config) *int64 { return &c.ShutdownTimeoutMs }),
		intOpt("http_read_timeout_ms", "how long a client may take to send a request, headers and body", func(c *Config) *int64 { return &c.HTTPReadTimeoutMs }),
		intOpt("http_write_timeout_ms", "how long a request may take from its headers to the end of its reply; long polls and streams (wait_ms, timeout_ms, follow=true, follower fetches) get it per write instead", func(c *Config) *int64 { return &c.HTTPWriteTimeoutMs }),
		intOpt("http_idle_timeout_ms", "how long a keep-alive connection may sit idle before it is closed", func(c *Config) *int64 { return &c.HTTPIdleTimeoutMs }),
		intOpt("http_max_idle_conns", "idle keep-alive connections kept at most; past it a connection is closed once its reply is sent", func(c *Config) *int32 { return &c.HTTPMaxIdleConns }),
	}
}

func intOpt[T int32 | int64](key, help string, field func(*Config) *T) option {
	return option{
		key: key, typ: "int", help: help,
		get: func(c *Config) string { return strconv.FormatInt(int64(*field(c)), 10) },
		set: func(c *Config, s string) error {
			bits := 64
			if _, is32 := any(T(0)).(int32); is32 {
				bits = 32
			}
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, bits)
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("%q is out of range for a %d-bit integer", s, bits)
			}
			if err != nil {
				return fmt.Errorf("%q is not an integer", s)
			}
			*field(c) = T(n)
			return nil
		},
	}
}

func strOpt(key, typ, help string, field func(*Config) *string) option {
	return option{
		key: key, typ: typ, help: help,
		get: func(c *Config) string { return *field(c) },
		set: func(c *Config, s string) error { *field(c) = strings.TrimSpace(s); return nil },
	}
}

func boolOpt(key, help string, field func(*Config) *bool) option {
	return option{
		key: key, typ: "bool", help: help,
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) },
		set: func(c *Config, s string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("%q is not true or false", s)
			}
			*field(c) = b
			return nil
		},
	}
}

func votersOpt() option {
	return option{
		key: "voters", typ: "id@host:port,...", list: true,
		help: "initial Raft voters, the same on every voter; empty means this node alone (node_id@raft_addr)",
		get:  func(c *Config) string { return votersText(c.Voters) },
		set: func(c *Config, s string) error {
			items, err := splitList(s)
			if err != nil {
				return err
			}
			var vs []Voter
			for _, it := range items {
				var v Voter
				if err := v.UnmarshalText([]byte(it)); err != nil {
					return err
				}
				vs = append(vs, v)
			}
			c.Voters = vs
			return nil
		},
	}
}

func joinOpt() option {
	o := listOpt("join", "url,...", "REST URLs (http://host:port) of existing nodes, to join a running cluster as a non-voter", func(c *Config) *[]string { return &c.Join })
	set := o.set
	o.set = func(c *Config, s string) error {
		if err := set(c, s); err != nil {
			return err
		}
		for i, it := range c.Join {
			c.Join[i] = strings.TrimSuffix(it, "/")
		}
		return nil
	}
	return o
}

func listOpt(key, typ, help string, field func(*Config) *[]string) option {
	return option{
		key: key, typ: typ, help: help, list: true,
		get: func(c *Config) string { return strings.Join(*field(c), ",") },
		set: func(c *Config, s string) error {
			items, err := splitList(s)
			if err != nil {
				return err
			}
			*field(c) = items
			return nil
		},
	}
}

// splitList reads "a, b,c"; "" is the empty list (nil, so it equals the default).
func splitList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if parts[i] == "" {
			return nil, fmt.Errorf("%q has an empty entry", s)
		}
	}
	return parts, nil
}

// AddFlags registers --config and one flag per setting. Flags only record
// their text; LoadConfig parses it, so a bad flag reads like a bad env var.
func AddFlags(fs *pflag.FlagSet) {
	fs.String(ConfigFileFlag, "", "YAML config `file` (or "+ConfigFileEnv+"); WEIR_* environment variables and flags override it")
	def := DefaultConfig()
	for _, o := range options() {
		f := fs.VarPF(&flagText{text: o.get(&def), typ: o.typ}, FlagName(o.key), "", o.help)
		if o.typ == "bool" {
			f.NoOptDefVal = "true" // --flag alone means true
		}
	}
}

// flagText is a flag that keeps the text it was given.
type flagText struct{ text, typ string }

func (f *flagText) String() string     { return f.text }
func (f *flagText) Set(s string) error { f.text = s; return nil }
func (f *flagText) Type() string       { return f.typ }

// LoadConfig builds the config from, lowest precedence first: DefaultConfig,
// the YAML file named by --config or WEIR_CONFIG, WEIR_<KEY> environment
// variables, and the flags set on fs (registered by AddFlags). fs and
// lookupEnv may be nil. The result is validated and Resolved; every error is
// a *KeyError that names the key and where its value came from.
func LoadConfig(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	cfg := DefaultConfig()
	sources := map[string]string{} // key -> where its value came from
	opts := options()

	path, pathSource := "", ""
	if f := lookupFlag(fs, ConfigFileFlag); f != nil && f.Changed {
		path, pathSource = f.Value.String(), "--"+ConfigFileFlag
	} else if v, ok := lookupEnv(ConfigFileEnv); ok {
		path, pathSource = v, ConfigFileEnv
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, &KeyError{Key: ConfigFileFlag, Msg: err.Error(), Source: pathSource, Err: err}
		}
		if err := decodeYAML(&cfg, data, path, sources); err != nil {
			if ke, ok := errors.AsType[*KeyError](err); ok && ke.Key == ConfigFileFlag && ke.Source == "" {
				ke.Source = pathSource
			}
			return Config{}, err
		}
	}
	for _, o := range opts {
		if v, ok := lookupEnv(EnvName(o.key)); ok {
			if err := apply(&cfg, o, v, EnvName(o.key), sources); err != nil {
				return Config{}, err
			}
		}
	}
	for _, o := range opts {
		if f := lookupFlag(fs, FlagName(o.key)); f != nil && f.Changed {
			if err := apply(&cfg, o, f.Value.String(), "--"+FlagName(o.key), sources); err != nil {
				return Config{}, err
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		if ke, ok := errors.AsType[*KeyError](err); ok && ke.Source == "" {
			annotated := *ke
			annotated.Source = sources[ke.Key]
			return Config{}, &annotated
		}
		return Config{}, err
	}
	return cfg.Resolved(), nil
}

func lookupFlag(fs *pflag.FlagSet, name string) *pflag.Flag {
	if fs == nil {
		return nil
	}
	return fs.Lookup(name)
}

func apply(cfg *Config, o option, text, source string, sources map[string]string) error {
	if err := o.set(cfg, text); err != nil {
		return &KeyError{Key: o.key, Msg: err.Error(), Source: source, Err: err}
	}
	sources[o.key] = source
	return nil
}

// decodeYAML applies a YAML file's settings to cfg. It walks the node tree
// rather than decoding into the struct (yaml's KnownFields): that way an
// unknown key and a bad value both name their key and line, and values go
// through the same parsers as flags and env vars.
func decodeYAML(cfg *Config, data []byte, name string, sources map[string]string) error {
	fileErr := func(format string, args ...any) error {
		return &KeyError{Key: ConfigFileFlag, Msg: name + ": " + fmt.Sprintf(format, args...)}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return &KeyError{Key: ConfigFileFlag, Msg: name + ": " + err.Error(), Err: err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fileErr("holds more than one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil // only comments
	}
	if root.Kind != yaml.MappingNode {
		return fileErr("line %d: want key: value settings at the top level", root.Line)
	}
	byKey := map[string]option{}
	for _, o := range options() {
		byKey[o.key] = o
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolveAlias(root.Content[i+1])
		where := fmt.Sprintf("%s line %d", name, k.Line)
		o, ok := byKey[k.Value]
		if !ok {
			msg := "unknown key"
			if s := suggestKey(k.Value); s != "" {
				msg += "; did you mean " + s + "?"
			}
			return &KeyError{Key: k.Value, Msg: msg, Source: where}
		}
		if line, dup := seen[k.Value]; dup {
			return &KeyError{Key: k.Value, Msg: fmt.Sprintf("set twice (first on line %d)", line), Source: where}
		}
		seen[k.Value] = k.Line
		text, err := yamlText(v, o.list)
		if err != nil {
			return &KeyError{Key: o.key, Msg: err.Error(), Source: where}
		}
		if err := apply(cfg, o, text, where, sources); err != nil {
			return err
		}
	}
	return nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// yamlText turns a value node into the text form flags take: a scalar as
// written, null as "", and (for list keys) a sequence of scalars as a comma list.
func yamlText(n *yaml.Node, list bool) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "", nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		if !list {
			return "", errors.New("takes a single value, not a list")
		}
		items := make([]string, 0, len(n.Content))
		for _, it := range n.Content {
			it = resolveAlias(it)
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				return "", fmt.Errorf("line %d: list entries must be plain values", it.Line)
			}
			items = append(items, it.Value)
		}
		return strings.Join(items, ","), nil
	default:
		return "", errors.New("takes a single value, not a mapping")
	}
}

// suggestKey finds the key a mistyped one most likely meant: the same key
// written Kafka-style (log.retention.ms) or with dashes, or one a typo or
// two away.
func suggestKey(k string) string {
	norm := strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToLower(k))
	best, bestDist := "", 3
	for _, o := range options() {
		if o.key == norm {
			return o.key
		}
		if d := editDistance(norm, o.key); d < bestDist {
			best, bestDist = o.key, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
