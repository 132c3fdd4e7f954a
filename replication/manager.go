package replication

import (
	"fmt"
	"sort"
	"sync"

	"weir/logstore"
)

// Assignment is what the metadata says about one partition, as this node must apply it.
type Assignment struct {
	Topic       string
	Partition   int32
	Replicas    []int32
	Leader      int32
	LeaderEpoch int32
	ISR         []int32
	MinISR      int
	Config      logstore.Config
}

type key struct {
	topic     string
	partition int32
}

// Manager holds this node's replicas and keeps them in line with the metadata.
type Manager struct {
	nodeID int32
	logs   *logstore.Manager

	mu      sync.RWMutex
	parts   map[key]*Partition
	changed chan struct{} // closed when any HW moves; guarded by mu
}

// NewManager returns a replica manager over the logs of a data dir.
func NewManager(nodeID int32, logs *logstore.Manager) *Manager {
	return &Manager{nodeID: nodeID, logs: logs, parts: map[key]*Partition{}, changed: make(chan struct{})}
}

// Partition returns this node's replica of a partition.
func (m *Manager) Partition(topic string, partition int32) (*Partition, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.parts[key{topic, partition}]
	return p, ok
}

// Partitions returns every replica this node holds, sorted by topic and partition.
func (m *Manager) Partitions() []*Partition {
	m.mu.RLock()
	out := make([]*Partition, 0, len(m.parts))
	for _, p := range m.parts {
		out = append(out, p)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Index < out[j].Index
	})
	return out
}

// AnyChanged returns a channel closed when the HW of any partition next moves.
func (m *Manager) AnyChanged() <-chan struct{} {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.changed
}

func (m *Manager) broadcast() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// Apply brings the replicas in line with the assignments of every partition
// this node holds a replica of: it opens missing logs, applies leadership and
// configs, and deletes the logs of partitions no longer assigned here.
func (m *Manager) Apply(assignments []Assignment) error {
	want := map[key]Assignment{}
	for _, a := range assignments {
		for _, r := range a.Replicas {
			if r == m.nodeID {
				want[key{a.Topic, a.Partition}] = a
			}
		}
	}
	var errs []error
	for k, a := range want {
		m.mu.RLock()
		p, ok := m.parts[k]
		m.mu.RUnlock()
		if !ok {
			l, err := m.logs.GetOrCreate(k.topic, k.partition, a.Config)
			if err != nil {
				errs = append(errs, fmt.Errorf("open log %s-%d: %w", k.topic, k.partition, err))
				continue
			}
			p = newPartition(k.topic, k.partition, l, m.broadcast)
			m.mu.Lock()
			m.parts[k] = p
			m.mu.Unlock()
		} else if err := p.log.SetConfig(a.Config); err != nil {
			errs = append(errs, fmt.Errorf("configure %s-%d: %w", k.topic, k.partition, err))
		}
		p.setState(a.Leader == m.nodeID, a.LeaderEpoch, a.Replicas, a.ISR, a.MinISR)
	}
	m.mu.Lock()
	var gone []*Partition
	for k, p := range m.parts {
		if _, ok := want[k]; !ok {
			gone = append(gone, p)
			delete(m.parts, k)
		}
	}
	m.mu.Unlock()
	for _, p := range gone {
		p.stop()
		if err := m.logs.Delete(p.Topic, p.Index); err != nil {
			errs = append(errs, err)
		}
	}
	// Logs on disk that no assignment names (a topic deleted while we were down).
	for _, name := range m.logs.Names() {
		t, part, ok := logstore.ParsePartitionDir(name)
		if !ok {
			continue
		}
		if _, ok := want[key{t, part}]; !ok {
			if err := m.logs.Delete(t, part); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("apply assignments: %v", errs)
	}
	return nil
}

// Close stops every replica's background work (the log manager closes the logs).
func (m *Manager) Close() {
	m.mu.Lock()
	parts := m.parts
	m.parts = map[key]*Partition{}
	m.mu.Unlock()
	for _, p := range parts {
		p.stop()
	}
}
