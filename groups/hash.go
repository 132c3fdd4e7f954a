package groups

import "unicode/utf16"

// DefaultGroup is the group used by calls that name none, as Kafka's console
// consumer does.
const DefaultGroup = "test-consumer-group"

// OffsetsTopic is the internal compacted topic holding committed offsets.
const OffsetsTopic = "__consumer_offsets"

// javaStringHashCode is java.lang.String.hashCode: s[0]*31^(n-1) + ... over
// UTF-16 code units with int32 wrap-around. Go strings are UTF-8, so we must
// re-encode to UTF-16 (supplementary characters become surrogate pairs) to
// agree with Java for non-ASCII group names. Invalid UTF-8 bytes decode as
// U+FFFD, which is also what Java's decoder produces for them.
func javaStringHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r1, r2 := utf16.EncodeRune(r); r1 != '\uFFFD' {
			h = 31*h + int32(r1)
			h = 31*h + int32(r2)
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// kafkaAbs is org.apache.kafka.common.utils.Utils.abs: Math.abs except that
// Integer.MIN_VALUE maps to 0 (Math.abs would return it unchanged, negative).
// Note it is NOT n & 0x7fffffff (that is Utils.toPositive, used by the
// producer's partitioner); the two differ for every negative n.
func kafkaAbs(n int32) int32 {
	if n == -1<<31 {
		return 0
	}
	if n < 0 {
		return -n
	}
	return n
}

// OffsetsPartition returns the partition of __consumer_offsets that stores
// group's offsets; its leader is the group's coordinator. It is Kafka's
// Utils.abs(groupId.hashCode()) % partitions. partitions < 1 yields 0 so a
// misconfiguration cannot panic the coordinator lookup.
func OffsetsPartition(group string, partitions int) int32 {
	if partitions < 1 {
		return 0
	}
	return int32(int64(kafkaAbs(javaStringHashCode(group))) % int64(partitions))
}
