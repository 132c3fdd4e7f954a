package groups

import (
	"errors"
	"fmt"
	"maps"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record key versions of __consumer_offsets, as Kafka defines them: 0 and 1
// are offset commits, 2 is group metadata. Newer Kafka coordinator record
// types (3+) are not ours and are ignored when replaying.
const (
	offsetCommitKeyVersion  int16 = 1
	groupMetadataKeyVersion int16 = 2
	// Kafka writes value version 3 (with leader epoch) unless an explicit
	// expire timestamp forces version 1; we never set one.
	offsetCommitValueVersion int16 = 3
	// Version 3 of the group metadata value is the newest non-flexible one
	// and what Kafka's classic coordinator writes.
	groupMetadataValueVersion int16 = 3
)

// RecordKind says what a __consumer_offsets record describes.
type RecordKind int

const (
	KindOffsetCommit RecordKind = iota + 1
	KindGroupMetadata
)

// ErrUnknownRecord marks a well-formed record of a key version we do not
// use; a Loader ignores these rather than counting them as corruption.
var ErrUnknownRecord = errors.New("groups: unknown __consumer_offsets record type")

// ErrMalformedRecord marks undecodable bytes.
var ErrMalformedRecord = errors.New("groups: malformed __consumer_offsets record")

// Record is a decoded __consumer_offsets record.
type Record struct {
	Kind RecordKind
	// Tombstone: the value was empty; the key's offset (or group) is
	// deleted and compaction will eventually drop the key.
	Tombstone bool
	Group     string

	// Offset commits.
	Topic       string
	Partition   int32
	Offset      int64
	Metadata    string
	CommitTime  int64
	LeaderEpoch int32

	// Group metadata.
	Generation int32
	Assignor   string
	StateTime  int64
}

// EncodeOffsetCommit encodes a committed offset as Kafka's offset commit
// key/value, so compaction keeps the latest commit per (group, topic,
// partition). commitTime is ms since the epoch.
func EncodeOffsetCommit(group, topic string, partition int32, offset int64, metadata string, commitTime int64) (key, value []byte) {
	key = offsetCommitKey(group, topic, partition)
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetCommitValueVersion
	v.Offset = offset
	v.LeaderEpoch = -1 // unknown: Weir's API does not carry epochs
	v.Metadata = metadata
	v.CommitTimestamp = commitTime
	return key, v.AppendTo(nil)
}

// EncodeOffsetTombstone returns the key whose record with a nil value
// deletes a committed offset.
func EncodeOffsetTombstone(group, topic string, partition int32) (key []byte) {
	return offsetCommitKey(group, topic, partition)
}

func offsetCommitKey(group, topic string, partition int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = offsetCommitKeyVersion
	k.Group, k.Topic, k.Partition = group, topic, partition
	return k.AppendTo(nil)
}

// EncodeGroupMetadata records the group's existence, generation and assignor,
// so a new coordinator continues generations instead of restarting at 0 and
// lists empty groups that have never committed. Members are not persisted:
// after failover they re-join (their ids are then unknown).
func EncodeGroupMetadata(group string, generation int32, assignor string, stateTime int64) (key, value []byte) {
	key = EncodeGroupTombstone(group)
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupMetadataValueVersion
	v.ProtocolType = "consumer"
	v.Generation = generation
	if assignor != "" {
		v.Protocol = &assignor
	}
	v.CurrentStateTimestamp = stateTime
	return key, v.AppendTo(nil)
}

// EncodeGroupTombstone returns the group metadata key; with a nil value it
// deletes the group.
func EncodeGroupTombstone(group string) (key []byte) {
	k := kmsg.NewGroupMetadataKey()
	k.Version = groupMetadataKeyVersion
	k.Group = group
	return k.AppendTo(nil)
}

// DecodeRecord decodes a __consumer_offsets record. It never panics: the
// bytes come from disk and from other nodes, and one bad record must not
// stop a coordinator from loading.
func DecodeRecord(key, value []byte) (rec Record, err error) {
	defer func() {
		if r := recover(); r != nil { // defence in depth; kmsg bounds-checks
			rec, err = Record{}, fmt.Errorf("%w: %v", ErrMalformedRecord, r)
		}
	}()
	if len(key) < 2 {
		return Record{}, fmt.Errorf("%w: key of %d bytes", ErrMalformedRecord, len(key))
	}
	version := int16(uint16(key[0])<<8 | uint16(key[1]))
	switch version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return Record{}, fmt.Errorf("%w: offset commit key: %v", ErrMalformedRecord, err)
		}
		rec = Record{Kind: KindOffsetCommit, Group: k.Group, Topic: k.Topic, Partition: k.Partition}
		if len(value) == 0 {
			rec.Tombstone = true
			return rec, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return Record{}, fmt.Errorf("%w: offset commit value: %v", ErrMalformedRecord, err)
		}
		if v.Version < 0 || v.Version > 4 {
			return Record{}, fmt.Errorf("%w: offset commit value version %d", ErrMalformedRecord, v.Version)
		}
		rec.Offset, rec.Metadata, rec.CommitTime = v.Offset, v.Metadata, v.CommitTimestamp
		rec.LeaderEpoch = -1
		if v.Version >= 3 {
			rec.LeaderEpoch = v.LeaderEpoch
		}
		return rec, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return Record{}, fmt.Errorf("%w: group metadata key: %v", ErrMalformedRecord, err)
		}
		rec = Record{Kind: KindGroupMetadata, Group: k.Group}
		if len(value) == 0 {
			rec.Tombstone = true
			return rec, nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(value); err != nil {
			return Record{}, fmt.Errorf("%w: group metadata value: %v", ErrMalformedRecord, err)
		}
		if v.Version < 0 || v.Version > 4 {
			return Record{}, fmt.Errorf("%w: group metadata value version %d", ErrMalformedRecord, v.Version)
		}
		rec.Generation, rec.StateTime = v.Generation, v.CurrentStateTimestamp
		if v.Protocol != nil {
			rec.Assignor = *v.Protocol
		}
		return rec, nil
	}
	// Kafka's newer coordinator record types use small key versions (3 and
	// up); anything negative or far beyond is far more likely corruption
	// than a record type from the future, so it counts as an error.
	if version < 0 || version > maxPlausibleKeyVersion {
		return Record{}, fmt.Errorf("%w: key version %d", ErrMalformedRecord, version)
	}
	return Record{}, fmt.Errorf("%w: key version %d", ErrUnknownRecord, version)
}

// maxPlausibleKeyVersion bounds record types we ignore rather than count as
// corrupt (Kafka 4 uses fewer than 30).
const maxPlausibleKeyVersion = 255

// LoadedGroup is one group's state rebuilt from __consumer_offsets.
type LoadedGroup struct {
	Name string
	// HasMetadata: a live group metadata record was seen (Generation and
	// Assignor are meaningful).
	HasMetadata bool
	Generation  int32
	Assignor    string
	Offsets     map[TopicPartition]OffsetAndMetadata
}

// Options returns Options that restore this group via NewGroup.
func (lg *LoadedGroup) Options() Options {
	return Options{Generation: lg.Generation, Offsets: maps.Clone(lg.Offsets)}
}

// Loader replays a __consumer_offsets partition, in offset order, into
// per-group state: a later record for a key wins and a tombstone deletes,
// which is exactly what compaction would leave behind, so loading a
// compacted and an uncompacted log gives the same result.
type Loader struct {
	groups map[string]*LoadedGroup
	// Records counts records applied; Ignored counts well-formed records of
	// types we do not use; Errors counts malformed ones (skipped).
	Records, Ignored, Errors int
	// LastError is the most recent decode error, for the log line.
	LastError error
}

// NewLoader returns an empty Loader.
func NewLoader() *Loader { return &Loader{groups: make(map[string]*LoadedGroup)} }

// Apply replays one record. It returns the decode error (also counted) so
// that callers may log it; replay should continue regardless.
func (l *Loader) Apply(key, value []byte) error {
	rec, err := DecodeRecord(key, value)
	switch {
	case errors.Is(err, ErrUnknownRecord):
		l.Ignored++
		return err
	case err != nil:
		l.Errors++
		l.LastError = err
		return err
	}
	l.Records++
	g := l.groups[rec.Group]
	if g == nil {
		if rec.Tombstone {
			return nil
		}
		g = &LoadedGroup{Name: rec.Group, Offsets: make(map[TopicPartition]OffsetAndMetadata)}
		l.groups[rec.Group] = g
	}
	switch rec.Kind {
	case KindOffsetCommit:
		tp := TopicPartition{rec.Topic, rec.Partition}
		if rec.Tombstone {
			delete(g.Offsets, tp)
		} else {
			g.Offsets[tp] = OffsetAndMetadata{rec.Offset, rec.Metadata, rec.CommitTime}
		}
	case KindGroupMetadata:
		if rec.Tombstone {
			g.HasMetadata, g.Generation, g.Assignor = false, 0, ""
		} else {
			g.HasMetadata, g.Generation, g.Assignor = true, rec.Generation, rec.Assignor
		}
	}
	if !g.HasMetadata && len(g.Offsets) == 0 {
		delete(l.groups, rec.Group) // fully deleted groups disappear
	}
	return nil
}

// Groups returns the loaded groups by name (the Loader's own values; stop
// applying records before mutating them).
func (l *Loader) Groups() map[string]*LoadedGroup { return l.groups }
