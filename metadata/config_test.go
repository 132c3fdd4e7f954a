package metadata

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	ok := []string{"a", "orders", "Orders.v2_x-1", "__consumer_offsets", "..a", strings.Repeat("x", 249)}
	for _, name := range ok {
		if err := ValidateTopicName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	bad := []string{"", ".", "..", strings.Repeat("x", 250), "a/b", "a b", "é", "a:b", "a\x00"}
	for _, name := range bad {
		err := ValidateTopicName(name)
		if !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q: %v", name, err)
		}
	}
	if err := ValidateTopicName("a/b"); !strings.Contains(err.Error(), `"a/b"`) || !strings.Contains(err.Error(), "'/'") {
		t.Errorf("message does not name the name and the character: %v", err)
	}
}

func TestValidateTopicConfig(t *testing.T) {
	valid := map[string][]string{
		"retention.ms":                   {"-1", "0", "604800000", "9223372036854775807"},
		"retention.bytes":                {"-1", "1073741824"},
		"segment.bytes":                  {"14", "2147483647"},
		"segment.ms":                     {"1", "604800000"},
		"cleanup.policy":                 {"delete", "compact", "compact,delete", "delete,compact", "compact, delete"},
		"min.insync.replicas":            {"1", "3"},
		"max.message.bytes":              {"0", "1048588"},
		"message.timestamp.type":         {"CreateTime", "LogAppendTime"},
		"unclean.leader.election.enable": {"true", "false", "TRUE"},
		"index.interval.bytes":           {"0", "4096"},
		"delete.retention.ms":            {"0", "86400000"},
	}
	invalid := map[string][]string{
		"retention.ms":                   {"-2", "x", "", "1.5", "9223372036854775808", " 1"},
		"retention.bytes":                {"-2", "abc"},
		"segment.bytes":                  {"13", "2147483648", "-1"},
		"segment.ms":                     {"0", "-1"},
		"cleanup.policy":                 {"", "none", "delete,delete", "compact,", "Delete"},
		"min.insync.replicas":            {"0", "-1", "2147483648"},
		"max.message.bytes":              {"-1"},
		"message.timestamp.type":         {"createtime", "", "Both"},
		"unclean.leader.election.enable": {"yes", "1", ""},
		"index.interval.bytes":           {"-1"},
		"delete.retention.ms":            {"-1"},
		"no.such.key":                    {"1"},
	}
	for key, values := range valid {
		for _, v := range values {
			if err := ValidateTopicConfig(key, v); err != nil {
				t.Errorf("%s=%q: %v", key, v, err)
			}
		}
	}
	for key, values := range invalid {
		for _, v := range values {
			err := ValidateTopicConfig(key, v)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s=%q: %v", key, v, err)
				continue
			}
			if !strings.Contains(err.Error(), key) {
				t.Errorf("%s=%q: message does not name the key: %v", key, v, err)
			}
		}
	}
}

func TestTopicConfigKeys(t *testing.T) {
	keys := TopicConfigKeys()
	want := []string{"cleanup.policy", "delete.retention.ms", "index.interval.bytes", "max.message.bytes",
		"message.timestamp.type", "min.insync.replicas", "retention.bytes", "retention.ms", "segment.bytes",
		"segment.ms", "unclean.leader.election.enable"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v", keys)
	}
	defaults := KafkaDefaultTopicConfigs()
	for _, k := range keys {
		if err := ValidateTopicConfig(k, defaults[k]); err != nil {
			t.Errorf("default %s: %v", k, err)
		}
	}
}

func TestEffectiveAndParsedConfigs(t *testing.T) {
	defaults := map[string]string{"retention.ms": "100", "segment.bytes": "2000"}
	overrides := map[string]string{"retention.ms": "5", "cleanup.policy": "compact,delete"}
	eff := EffectiveConfigs(defaults, overrides)
	want := map[string]string{"retention.ms": "5", "segment.bytes": "2000", "cleanup.policy": "compact,delete"}
	if !reflect.DeepEqual(eff, want) {
		t.Fatalf("effective %v", eff)
	}
	if defaults["retention.ms"] != "100" {
		t.Fatal("EffectiveConfigs modified its input")
	}
	tc, err := ParseTopicConfig(eff)
	if err != nil {
		t.Fatal(err)
	}
	if tc.RetentionMs != 5 || tc.SegmentBytes != 2000 || !tc.CleanupPolicy.Compact || !tc.CleanupPolicy.Delete ||
		tc.MinInsyncReplicas != 1 || tc.MessageTimestampType != "CreateTime" || tc.UncleanLeaderElectionEnable ||
		tc.RetentionBytes != -1 || tc.MaxMessageBytes != 1048588 || tc.IndexIntervalBytes != 4096 || tc.DeleteRetentionMs != 86400000 {
		t.Fatalf("parsed %+v", tc)
	}
	if _, err := ParseTopicConfig(map[string]string{"segment.ms": "0"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("parse invalid: %v", err)
	}
}
