package metadata

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// MaxTopicNameLength is Kafka's limit (249, so that "<name>-<partition>"
// directory names stay under common 255-byte file name limits).
const MaxTopicNameLength = 249

// MaxPartitionsPerTopic bounds a topic's partition count: each partition is a
// directory (and, while in use, open files) on every replica, so larger
// counts are almost certainly a typo.
const MaxPartitionsPerTopic = 10000

// ValidateTopicName checks Kafka's rules: 1-249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic name is empty", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name cannot be %q", ErrInvalidTopic, name)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w: topic name is %d characters long, the maximum is %d",
			ErrInvalidTopic, len(name), MaxTopicNameLength)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic name %q contains %q; allowed are ASCII letters, digits, '.', '_' and '-'",
				ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// Topic config keys (Kafka's names).
const (
	ConfigRetentionMs                 = "retention.ms"
	ConfigRetentionBytes              = "retention.bytes"
	ConfigSegmentBytes                = "segment.bytes"
	ConfigSegmentMs                   = "segment.ms"
	ConfigCleanupPolicy               = "cleanup.policy"
	ConfigMinInsyncReplicas           = "min.insync.replicas"
	ConfigMaxMessageBytes             = "max.message.bytes"
	ConfigMessageTimestampType        = "message.timestamp.type"
	ConfigUncleanLeaderElectionEnable = "unclean.leader.election.enable"
	ConfigIndexIntervalBytes          = "index.interval.bytes"
	ConfigDeleteRetentionMs           = "delete.retention.ms"
)

// Allowed values of cleanup.policy and message.timestamp.type.
const (
	CleanupPolicyDelete        = "delete"
	CleanupPolicyCompact       = "compact"
	TimestampTypeCreateTime    = "CreateTime"
	TimestampTypeLogAppendTime = "LogAppendTime"
)

type configKind int

const (
	kindLong configKind = iota
	kindInt
	kindBoolean
	kindEnum
	kindCleanupPolicy
)

// configSpec describes one topic config key: its type, the lower bound for
// numbers, the allowed values for enums, and Kafka's default.
type configSpec struct {
	key     string
	kind    configKind
	min     int64
	allowed []string
	def     string
}

// topicConfigSchema is a constant table, sorted by key.
var topicConfigSchema = []configSpec{
	{key: ConfigCleanupPolicy, kind: kindCleanupPolicy, def: CleanupPolicyDelete},
	{key: ConfigDeleteRetentionMs, kind: kindLong, min: 0, def: "86400000"},
	{key: ConfigIndexIntervalBytes, kind: kindInt, min: 0, def: "4096"},
	{key: ConfigMaxMessageBytes, kind: kindInt, min: 0, def: "1048588"},
	{key: ConfigMessageTimestampType, kind: kindEnum, allowed: []string{TimestampTypeCreateTime, TimestampTypeLogAppendTime}, def: TimestampTypeCreateTime},
	{key: ConfigMinInsyncReplicas, kind: kindInt, min: 1, def: "1"},
	{key: ConfigRetentionBytes, kind: kindLong, min: -1, def: "-1"},
	{key: ConfigRetentionMs, kind: kindLong, min: -1, def: "604800000"},
	{key: ConfigSegmentBytes, kind: kindInt, min: 14, def: "1073741824"},
	{key: ConfigSegmentMs, kind: kindLong, min: 1, def: "604800000"},
	{key: ConfigUncleanLeaderElectionEnable, kind: kindBoolean, def: "false"},
}

func lookupConfigSpec(key string) (configSpec, bool) {
	i := sort.Search(len(topicConfigSchema), func(i int) bool { return topicConfigSchema[i].key >= key })
	if i < len(topicConfigSchema) && topicConfigSchema[i].key == key {
		return topicConfigSchema[i], true
	}
	return configSpec{}, false
}

// TopicConfigKeys returns the supported topic config keys, sorted.
func TopicConfigKeys() []string {
	keys := make([]string, len(topicConfigSchema))
	for i, s := range topicConfigSchema {
		keys[i] = s.key
	}
	return keys
}

// KafkaDefaultTopicConfigs returns Kafka's default value for every supported
// key (a fresh map each call). Brokers may override these defaults in their
// own configuration before passing them to EffectiveConfigs.
func KafkaDefaultTopicConfigs() map[string]string {
	m := make(map[string]string, len(topicConfigSchema))
	for _, s := range topicConfigSchema {
		m[s.key] = s.def
	}
	return m
}

// ValidateTopicConfig checks one topic config entry against Kafka's type and
// range for that key. Unknown keys are rejected. Values are parsed strictly
// (no surrounding spaces) so that whatever is stored parses the same way
// everywhere.
func ValidateTopicConfig(key, value string) error {
	spec, ok := lookupConfigSpec(key)
	if !ok {
		return fmt.Errorf("%w: unknown topic config %q (supported: %s)",
			ErrInvalidConfig, key, strings.Join(TopicConfigKeys(), ", "))
	}
	switch spec.kind {
	case kindLong, kindInt:
		bits := 64
		if spec.kind == kindInt {
			bits = 32
		}
		n, err := strconv.ParseInt(value, 10, bits)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not a valid %d-bit integer", ErrInvalidConfig, key, value, bits)
		}
		if n < spec.min {
			return fmt.Errorf("%w: %s=%d must be at least %d", ErrInvalidConfig, key, n, spec.min)
		}
	case kindBoolean:
		if !strings.EqualFold(value, "true") && !strings.EqualFold(value, "false") {
			return fmt.Errorf("%w: %s=%q must be true or false", ErrInvalidConfig, key, value)
		}
	case kindEnum:
		if !containsString(spec.allowed, value) {
			return fmt.Errorf("%w: %s=%q must be one of %s", ErrInvalidConfig, key, value, strings.Join(spec.allowed, ", "))
		}
	case kindCleanupPolicy:
		if _, err := parseCleanupPolicy(value); err != nil {
			return err
		}
	}
	return nil
}

// parseCleanupPolicy accepts "delete", "compact", and both in any order,
// comma-separated, with optional spaces around items (as Kafka's list type).
func parseCleanupPolicy(value string) (CleanupPolicy, error) {
	var p CleanupPolicy
	items := strings.Split(value, ",")
	for _, raw := range items {
		item := strings.TrimSpace(raw)
		switch item {
		case CleanupPolicyDelete:
			if p.Delete {
				return p, fmt.Errorf("%w: %s=%q lists %q twice", ErrInvalidConfig, ConfigCleanupPolicy, value, item)
			}
			p.Delete = true
		case CleanupPolicyCompact:
			if p.Compact {
				return p, fmt.Errorf("%w: %s=%q lists %q twice", ErrInvalidConfig, ConfigCleanupPolicy, value, item)
			}
			p.Compact = true
		default:
			return p, fmt.Errorf("%w: %s=%q must be delete, compact or \"compact,delete\"",
				ErrInvalidConfig, ConfigCleanupPolicy, value)
		}
	}
	return p, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ValidateTopicConfigs validates every entry of m, in key order so that the
// first error reported is deterministic.
func ValidateTopicConfigs(m map[string]string) error {
	for _, k := range sortedKeys(m) {
		if err := ValidateTopicConfig(k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

// EffectiveConfigs merges a topic's overrides over the defaults into a new
// map; neither argument is modified.
func EffectiveConfigs(defaults, overrides map[string]string) map[string]string {
	out := make(map[string]string, len(defaults)+len(overrides))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range overrides {
		out[k] = v
	}
	return out
}

// CleanupPolicy is a parsed cleanup.policy.
type CleanupPolicy struct {
	Delete  bool
	Compact bool
}

// TopicConfig is a typed view of a topic's effective configs.
type TopicConfig struct {
	RetentionMs                 int64
	RetentionBytes              int64
	SegmentBytes                int32
	SegmentMs                   int64
	CleanupPolicy               CleanupPolicy
	MinInsyncReplicas           int32
	MaxMessageBytes             int32
	MessageTimestampType        string
	UncleanLeaderElectionEnable bool
	IndexIntervalBytes          int32
	DeleteRetentionMs           int64
}

// ParseTopicConfig parses effective configs (typically EffectiveConfigs of
// the broker defaults and the topic's overrides). Keys missing from m take
// Kafka's defaults; invalid values are an ErrInvalidConfig.
func ParseTopicConfig(m map[string]string) (TopicConfig, error) {
	eff := EffectiveConfigs(KafkaDefaultTopicConfigs(), m)
	if err := ValidateTopicConfigs(eff); err != nil {
		return TopicConfig{}, err
	}
	// Validated above, so the parses below cannot fail.
	long := func(k string) int64 { n, _ := strconv.ParseInt(eff[k], 10, 64); return n }
	i32 := func(k string) int32 {
		n, _ := strconv.ParseInt(eff[k], 10, 32)
		return int32(max(math.MinInt32, min(math.MaxInt32, n)))
	}
	policy, _ := parseCleanupPolicy(eff[ConfigCleanupPolicy])
	return TopicConfig{
		RetentionMs:                 long(ConfigRetentionMs),
		RetentionBytes:              long(ConfigRetentionBytes),
		SegmentBytes:                i32(ConfigSegmentBytes),
		SegmentMs:                   long(ConfigSegmentMs),
		CleanupPolicy:               policy,
		MinInsyncReplicas:           i32(ConfigMinInsyncReplicas),
		MaxMessageBytes:             i32(ConfigMaxMessageBytes),
		MessageTimestampType:        eff[ConfigMessageTimestampType],
		UncleanLeaderElectionEnable: strings.EqualFold(eff[ConfigUncleanLeaderElectionEnable], "true"),
		IndexIntervalBytes:          i32(ConfigIndexIntervalBytes),
		DeleteRetentionMs:           long(ConfigDeleteRetentionMs),
	}, nil
}

// uncleanElectionEnabled reads the topic's explicit override only: the FSM
// cannot see broker defaults, so it applies Kafka's default (false) when the
// topic sets nothing.
func uncleanElectionEnabled(t *Topic) bool {
	return strings.EqualFold(t.Configs[ConfigUncleanLeaderElectionEnable], "true")
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
