package server

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	httpapi "weir/http"
	"weir/metadata"
	"weir/nodeauth"
)

// Config is everything a node is started with. Each field's yaml tag is its
// key; the flag is the key with dashes (--node-id) and the environment
// variable is WEIR_ plus the key in upper case (WEIR_NODE_ID). LoadConfig
// merges them; config.example.yaml documents every key.
//
// Durations are plain milliseconds (suffix _ms) and sizes plain bytes, as in
// Kafka, so values copy over from a Kafka setup unchanged.
type Config struct {
	// Identity and addresses.
	NodeID            int32    `yaml:"node_id"`
	DataDir           string   `yaml:"data_dir"`
	HTTPAddr          string   `yaml:"http_addr"`
	RaftAddr          string   `yaml:"raft_addr"`
	AdvertiseHTTPAddr string   `yaml:"advertise_http_addr"` // "" = HTTPAddr (see Resolved)
	Voters            []Voter  `yaml:"voters"`              // nil = this node alone, unless joining (see Resolved)
	Join              []string `yaml:"join"`                // http(s)://host:port of existing nodes
	BrokerRack        string   `yaml:"broker_rack"`
	// ClusterSecret is what nodes prove to each other; "" = the data dir's
	// cluster-secret file (see clusterKeys). Never logged.
	ClusterSecret string `yaml:"cluster_secret"`
	// HTTPAllowedHosts are the host names the API answers to besides IP
	// literals, localhost and the advertised name; "*" answers any. Empty:
	// any name when http_addr listens beyond loopback.
	HTTPAllowedHosts []string `yaml:"http_allowed_hosts"`
	TrustedProxies   []string `yaml:"trusted_proxies"` // CIDRs whose X-Forwarded-For is believed

	// Logging.
	LogLevel  string `yaml:"log_level"`  // debug|info|warn|error
	LogFormat string `yaml:"log_format"` // text|json

	// Storage and topic defaults (Kafka's broker-level names, snake_case).
	Fsync                       string `yaml:"fsync"` // always|never
	NumPartitions               int32  `yaml:"num_partitions"`
	MaxPartitionsPerRequest     int32  `yaml:"max_partitions_per_request"`
	DefaultReplicationFactor    int32  `yaml:"default_replication_factor"`
	MinInsyncReplicas           int32  `yaml:"min_insync_replicas"`
	LogRetentionMs              int64  `yaml:"log_retention_ms"`
	LogRetentionBytes           int64  `yaml:"log_retention_bytes"`
	LogSegmentBytes             int64  `yaml:"log_segment_bytes"`
	LogSegmentMs                int64  `yaml:"log_segment_ms"`
	LogIndexIntervalBytes       int64  `yaml:"log_index_interval_bytes"`
	LogCleanupPolicy            string `yaml:"log_cleanup_policy"`
	LogDeleteRetentionMs        int64  `yaml:"log_delete_retention_ms"`
	MessageMaxBytes             int64  `yaml:"message_max_bytes"`
	MessageTimestampType        string `yaml:"message_timestamp_type"`
	UncleanLeaderElectionEnable bool   `yaml:"unclean_leader_election_enable"`
	MaxRequestBytes             int64  `yaml:"max_request_bytes"`
	MaxRequestRecords           int32  `yaml:"max_request_records"`
	LogRetentionCheckIntervalMs int64  `yaml:"log_retention_check_interval_ms"`
	LogFlushIntervalMs          int64  `yaml:"log_flush_interval_ms"`
	LogCleanerBackoffMs         int64  `yaml:"log_cleaner_backoff_ms"`
	LogCleanerThreads           int32  `yaml:"log_cleaner_threads"`
	LogMaxOpenFiles             int64  `yaml:"log_max_open_files"` // 0 = half of RLIMIT_NOFILE

	// Cluster timing, replication and groups.
	BrokerHeartbeatIntervalMs int64 `yaml:"broker_heartbeat_interval_ms"`
	BrokerSessionTimeoutMs    int64 `yaml:"broker_session_timeout_ms"`
	ReplicaLagTimeMaxMs       int64 `yaml:"replica_lag_time_max_ms"`
	ReplicaFetchWaitMaxMs     int64 `yaml:"replica_fetch_wait_max_ms"`
	AutoLeaderRebalanceEnable bool  `yaml:"auto_leader_rebalance_enable"`
	// LeaderImbalanceCheckIntervalMs is how often the controller moves
	// leaderships back to preferred replicas (Kafka's
	// leader.imbalance.check.interval.seconds).
	LeaderImbalanceCheckIntervalMs int64 `yaml:"leader_imbalance_check_interval_ms"`
	GroupsOffsetsPartitions        int32 `yaml:"groups_offsets_partitions"`
	GroupsOffsetsSegmentBytes      int64 `yaml:"groups_offsets_segment_bytes"`
	RequestTimeoutMs               int64 `yaml:"request_timeout_ms"`
	ShutdownTimeoutMs              int64 `yaml:"shutdown_timeout_ms"`

	// The HTTP server's connections.
	HTTPReadTimeoutMs  int64 `yaml:"http_read_timeout_ms"`
	HTTPWriteTimeoutMs int64 `yaml:"http_write_timeout_ms"`
	HTTPIdleTimeoutMs  int64 `yaml:"http_idle_timeout_ms"`
	HTTPMaxIdleConns   int32 `yaml:"http_max_idle_conns"`
}

// Voter is one initial Raft voter, written id@host:port.
type Voter struct {
	ID       int32
	RaftAddr string
}

func (v Voter) String() string { return strconv.FormatInt(int64(v.ID), 10) + "@" + v.RaftAddr }

// MarshalText makes a Voter id@host:port in YAML and JSON, the same form
// the flag and the environment take.
func (v Voter) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText parses id@host:port; Validate checks the id and address.
func (v *Voter) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	idText, addr, ok := strings.Cut(s, "@")
	if !ok {
		return fmt.Errorf("%q is not id@host:port", s)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(idText), 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not id@host:port (the id must be a number)", s)
	}
	*v = Voter{ID: int32(id), RaftAddr: strings.TrimSpace(addr)}
	return nil
}

// DefaultConfig is a single node on localhost with Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		NodeID:   1,
		DataDir:  "./weir-data",
		HTTPAddr: "127.0.0.1:8082",
		RaftAddr: "127.0.0.1:9093",

		LogLevel:  "info",
		LogFormat: "text",

		Fsync:                       "always",
		NumPartitions:               1,
		MaxPartitionsPerRequest:     metadata.MaxPartitionsPerTopic,
		DefaultReplicationFactor:    1,
		MinInsyncReplicas:           1,
		LogRetentionMs:              7 * 24 * 3600 * 1000,
		LogRetentionBytes:           -1,
		LogSegmentBytes:             1 << 30,
		LogSegmentMs:                7 * 24 * 3600 * 1000,
		LogIndexIntervalBytes:       4096,
		LogCleanupPolicy:            "delete",
		LogDeleteRetentionMs:        24 * 3600 * 1000,
		MessageMaxBytes:             1048588,
		MessageTimestampType:        "CreateTime",
		UncleanLeaderElectionEnable: false,
		MaxRequestBytes:             16 << 20,
		MaxRequestRecords:           httpapi.DefaultMaxRequestRecords,
		LogRetentionCheckIntervalMs: 300000,
		LogFlushIntervalMs:          60000,
		LogCleanerBackoffMs:         15000,
		LogCleanerThreads:           1,
		LogMaxOpenFiles:             0,

		BrokerHeartbeatIntervalMs:      500,
		BrokerSessionTimeoutMs:         2500,
		ReplicaLagTimeMaxMs:            10000,
		ReplicaFetchWaitMaxMs:          500,
		AutoLeaderRebalanceEnable:      true,
		LeaderImbalanceCheckIntervalMs: 300_000,
		GroupsOffsetsPartitions:        16,
		GroupsOffsetsSegmentBytes:      16 << 20,
		RequestTimeoutMs:               30000,
		ShutdownTimeoutMs:              30000,

		HTTPReadTimeoutMs:  30000,
		HTTPWriteTimeoutMs: 60000,
		HTTPIdleTimeoutMs:  120000,
		HTTPMaxIdleConns:   4096,
	}
}

// Resolved fills in the settings whose default derives from others:
// advertise_http_addr from http_addr, and voters from node_id@raft_addr when
// neither voters nor join is given. LoadConfig returns resolved configs;
// calling it again changes nothing.
func (c Config) Resolved() Config {
	if c.AdvertiseHTTPAddr == "" {
		c.AdvertiseHTTPAddr = c.HTTPAddr
	}
	if len(c.Voters) == 0 && len(c.Join) == 0 {
		c.Voters = []Voter{{ID: c.NodeID, RaftAddr: c.RaftAddr}}
	}
	return c
}

// RaftAdvertiseAddr is the Raft address other nodes dial for this node: its
// own entry in voters, else raft_addr (which may differ from the voters entry
// when it binds, say, 0.0.0.0).
func (c Config) RaftAdvertiseAddr() string {
	if v, ok := c.selfVoter(); ok {
		return v.RaftAddr
	}
	return c.RaftAddr
}

func (c Config) selfVoter() (Voter, bool) {
	for _, v := range c.Voters {
		if v.ID == c.NodeID {
			return v, true
		}
	}
	return Voter{}, false
}

// TopicDefaults gives the topic configs (Kafka names) a topic gets when it
// does not set them, taken from the broker-level keys.
func (c Config) TopicDefaults() map[string]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return map[string]string{
		"retention.ms":                   i(c.LogRetentionMs),
		"retention.bytes":                i(c.LogRetentionBytes),
		"segment.bytes":                  i(c.LogSegmentBytes),
		"segment.ms":                     i(c.LogSegmentMs),
		"cleanup.policy":                 c.LogCleanupPolicy,
		"min.insync.replicas":            i(int64(c.MinInsyncReplicas)),
		"max.message.bytes":              i(c.MessageMaxBytes),
		"message.timestamp.type":         c.MessageTimestampType,
		"unclean.leader.election.enable": strconv.FormatBool(c.UncleanLeaderElectionEnable),
		"index.interval.bytes":           i(c.LogIndexIntervalBytes),
		"delete.retention.ms":            i(c.LogDeleteRetentionMs),
	}
}

// KeyError is a bad setting. Every configuration error is one, so a caller
// can always tell the user which key to fix.
type KeyError struct {
	Key    string // the setting, e.g. "node_id"; "config" for the file itself
	Msg    string // what is wrong, e.g. `"foo" is not host:port`
	Source string // where the value came from ("--node-id", "WEIR_NODE_ID", "weir.yaml line 3"); "" if unknown
	Err    error  // the cause, if any
}

func (e *KeyError) Error() string {
	s := e.Key + ": " + e.Msg
	if e.Source != "" {
		s += " (from " + e.Source + ")"
	}
	return s
}

func (e *KeyError) Unwrap() error { return e.Err }

func keyErr(key, format string, args ...any) error {
	return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Validate reports the first bad setting, in the order of the Config fields.
// It accepts both a raw and a Resolved config.
func (c Config) Validate() error {
	for _, check := range []func() error{
		func() error { return between("node_id", int64(c.NodeID), 1, math.MaxInt32) },
		func() error {
			if strings.TrimSpace(c.DataDir) == "" {
				return keyErr("data_dir", "must not be empty")
			}
			return nil
		},
		func() error { return checkAddr("http_addr", c.HTTPAddr, false) },
		func() error { return checkAddr("raft_addr", c.RaftAddr, false) },
		c.validateAdvertise,
		c.validateVoters,
		func() error {
			for _, u := range c.Join {
				if err := checkJoinURL(u); err != nil {
					return err
				}
			}
			return nil
		},
		c.validateRaftAdvertise,
		func() error {
			if c.ClusterSecret == "" {
				return nil // the data dir's file, or a new one (Node.Run)
			}
			if err := nodeauth.CheckSecret(c.ClusterSecret); err != nil {
				return keyErr("cluster_secret", "%v", err)
			}
			return nil
		},
		func() error {
			_, err := parseTrustedProxies(c.TrustedProxies)
			return err
		},
		func() error { return oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error") },
		func() error { return oneOf("log_format", c.LogFormat, "text", "json") },
		func() error { return oneOf("fsync", c.Fsync, "always", "never") },
		func() error { return between("num_partitions", int64(c.NumPartitions), 1, math.MaxInt32) },
		func() error {
			return between("max_partitions_per_request", int64(c.MaxPartitionsPerRequest), 1, metadata.MaxPartitionsPerTopic)
		},
		// Replication factors are int16 in Kafka's protocol.
		func() error {
			return between("default_replication_factor", int64(c.DefaultReplicationFactor), 1, math.MaxInt16)
		},
		func() error { return between("min_insync_replicas", int64(c.MinInsyncReplicas), 1, math.MaxInt16) },
		func() error { return atLeast("log_retention_ms", c.LogRetentionMs, -1) },
		func() error { return atLeast("log_retention_bytes", c.LogRetentionBytes, -1) },
		// 14 bytes is Kafka's floor; positions in a segment are 32-bit.
		func() error { return between("log_segment_bytes", c.LogSegmentBytes, 14, math.MaxInt32) },
		func() error { return atLeast("log_segment_ms", c.LogSegmentMs, 1) },
		// 0 indexes every batch, as in Kafka.
		func() error { return between("log_index_interval_bytes", c.LogIndexIntervalBytes, 0, math.MaxInt32) },
		func() error {
			return oneOf("log_cleanup_policy", c.LogCleanupPolicy, "delete", "compact", "compact,delete", "delete,compact")
		},
		func() error { return atLeast("log_delete_retention_ms", c.LogDeleteRetentionMs, 0) },
		func() error { return between("message_max_bytes", c.MessageMaxBytes, 1, math.MaxInt32) },
		func() error {
			return oneOf("message_timestamp_type", c.MessageTimestampType, "CreateTime", "LogAppendTime")
		},
		func() error { return atLeast("max_request_bytes", c.MaxRequestBytes, 1) },
		func() error { return atLeast("max_request_records", int64(c.MaxRequestRecords), 1) },
		func() error {
			if c.MessageMaxBytes > c.MaxRequestBytes {
				return keyErr("message_max_bytes", "%d is more than max_request_bytes (%d), so no request could carry such a record", c.MessageMaxBytes, c.MaxRequestBytes)
			}
			return nil
		},
		func() error { return atLeast("log_retention_check_interval_ms", c.LogRetentionCheckIntervalMs, 1) },
		func() error { return atLeast("log_flush_interval_ms", c.LogFlushIntervalMs, 1) },
		func() error { return atLeast("log_cleaner_backoff_ms", c.LogCleanerBackoffMs, 1) },
		func() error { return between("log_cleaner_threads", int64(c.LogCleanerThreads), 1, 64) },
		func() error { return between("log_max_open_files", c.LogMaxOpenFiles, 0, math.MaxInt32) },
		func() error { return atLeast("broker_heartbeat_interval_ms", c.BrokerHeartbeatIntervalMs, 1) },
		func() error {
			if c.BrokerSessionTimeoutMs <= c.BrokerHeartbeatIntervalMs {
				return keyErr("broker_session_timeout_ms", "must be more than broker_heartbeat_interval_ms (%d), got %d", c.BrokerHeartbeatIntervalMs, c.BrokerSessionTimeoutMs)
			}
			return nil
		},
		func() error { return atLeast("replica_lag_time_max_ms", c.ReplicaLagTimeMaxMs, 1) },
		func() error { return atLeast("replica_fetch_wait_max_ms", c.ReplicaFetchWaitMaxMs, 0) },
		func() error {
			return atLeast("leader_imbalance_check_interval_ms", c.LeaderImbalanceCheckIntervalMs, 100)
		},
		func() error {
			// As Kafka requires: a follower parked in a long poll longer than
			// the lag limit would drop out of the ISR while merely idle.
			if c.ReplicaFetchWaitMaxMs > c.ReplicaLagTimeMaxMs {
				return keyErr("replica_fetch_wait_max_ms", "must not be more than replica_lag_time_max_ms (%d), got %d", c.ReplicaLagTimeMaxMs, c.ReplicaFetchWaitMaxMs)
			}
			return nil
		},
		func() error {
			return between("groups_offsets_partitions", int64(c.GroupsOffsetsPartitions), 1, math.MaxInt32)
		},
		func() error {
			return between("groups_offsets_segment_bytes", c.GroupsOffsetsSegmentBytes, 14, math.MaxInt32)
		},
		func() error { return atLeast("request_timeout_ms", c.RequestTimeoutMs, 1) },
		func() error {
			// Follower fetches are node-to-node requests: the long poll must
			// end before the request times out.
			if c.ReplicaFetchWaitMaxMs >= c.RequestTimeoutMs {
				return keyErr("replica_fetch_wait_max_ms", "must be less than request_timeout_ms (%d), got %d", c.RequestTimeoutMs, c.ReplicaFetchWaitMaxMs)
			}
			return nil
		},
		func() error { return atLeast("shutdown_timeout_ms", c.ShutdownTimeoutMs, 1) },
		func() error { return atLeast("http_read_timeout_ms", c.HTTPReadTimeoutMs, 1) },
		func() error {
			// A produce waits up to the request timeout for its acks before it
			// replies; the write timeout must leave it that long.
			if c.HTTPWriteTimeoutMs <= c.RequestTimeoutMs {
				return keyErr("http_write_timeout_ms", "must be more than request_timeout_ms (%d), got %d", c.RequestTimeoutMs, c.HTTPWriteTimeoutMs)
			}
			return nil
		},
		func() error { return atLeast("http_idle_timeout_ms", c.HTTPIdleTimeoutMs, 1) },
		func() error { return between("http_max_idle_conns", int64(c.HTTPMaxIdleConns), 1, math.MaxInt32) },
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func atLeast(key string, v, lo int64) error {
	if v < lo {
		return keyErr(key, "must be %d or more, got %d", lo, v)
	}
	return nil
}

func between(key string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return keyErr(key, "must be between %d and %d, got %d", lo, hi, v)
	}
	return nil
}

func (c Config) validateAdvertise() error {
	if c.AdvertiseHTTPAddr != "" {
		return checkAddr("advertise_http_addr", c.AdvertiseHTTPAddr, true)
	}
	// Resolved would advertise http_addr, and a wildcard is not an address
	// clients can dial.
	if host, _, _ := net.SplitHostPort(c.HTTPAddr); !metadata.SpecificHost(host) {
		return keyErr("advertise_http_addr", "must be set when http_addr %q has no specific host (it is the address clients and other nodes dial)", c.HTTPAddr)
	}
	return nil
}

// validateRaftAdvertise: without its own voters entry a node advertises
// raft_addr, so that must be dialable.
func (c Config) validateRaftAdvertise() error {
	if _, self := c.selfVoter(); self {
		return nil
	}
	if host, _, _ := net.SplitHostPort(c.RaftAddr); !metadata.SpecificHost(host) {
		return keyErr("raft_addr", "%q has no specific host for other nodes to dial; give one, or list this node in voters", c.RaftAddr)
	}
	return nil
}

func (c Config) validateVoters() error {
	ids := make(map[int32]bool, len(c.Voters))
	addrs := make(map[string]bool, len(c.Voters))
	for _, v := range c.Voters {
		if v.ID < 1 {
			return keyErr("voters", "id in %q must be 1 or more", v.String())
		}
		if err := checkAddr("voters", v.RaftAddr, true); err != nil {
			return err
		}
		if ids[v.ID] {
			return keyErr("voters", "id %d is listed more than once", v.ID)
		}
		if addrs[v.RaftAddr] {
			return keyErr("voters", "address %q is listed more than once", v.RaftAddr)
		}
		ids[v.ID], addrs[v.RaftAddr] = true, true
	}
	if len(c.Voters) > 0 && len(c.Join) == 0 && !ids[c.NodeID] {
		// Every voter bootstraps with the same list; a node outside it must join.
		return keyErr("voters", "node_id %d is not among the voters %q; add it, or set join to join as a non-voter", c.NodeID, votersText(c.Voters))
	}
	return nil
}

func votersText(vs []Voter) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

// checkAddr accepts host:port with a numeric port 1-65535. Listen addresses
// may leave the host empty or unspecified (every interface); addresses other
// nodes dial (needHost) must name one.
func checkAddr(key, s string, needHost bool) error {
	if err := metadata.CheckAddr(s, needHost); err != nil {
		return keyErr(key, "%v", err)
	}
	return nil
}

func checkJoinURL(s string) error {
	bad := func() error { return keyErr("join", "%q is not an http://host:port URL", s) }
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return bad()
	}
	if !metadata.ValidHost(u.Hostname()) || !metadata.SpecificHost(u.Hostname()) {
		return bad()
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return keyErr("join", "%q has port %q; want a number from 1 to 65535", s, p)
		}
	}
	return nil
}

func oneOf(key, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return keyErr(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// parseTrustedProxies reads trusted_proxies: CIDRs, or single IPs.
func parseTrustedProxies(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range list {
		if ip := net.ParseIP(s); ip != nil {
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, keyErr("trusted_proxies", "%q is neither a CIDR (10.0.0.0/8) nor an IP", s)
		}
		out = append(out, n)
	}
	return out, nil
}
