package metadata

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// applyCommand computes the image that follows base once cmd, the Raft entry
// at index, is applied. It is a pure function of its arguments (no clock, no
// randomness, map iterations only where order cannot matter or sorted), which
// is what keeps every replica of the FSM identical. base is never modified.
// On error the returned image is base at the new version: a refused command
// changes nothing but still counts as applied.
func applyCommand(base *Image, index uint64, cmd Command) (*Image, error) {
	tx := &txn{next: shallowCopy(base)}
	tx.next.Version = index
	var err error
	switch c := cmd.(type) {
	case InitClusterCmd:
		err = tx.initCluster(c)
	case RegisterBrokerCmd:
		err = tx.registerBroker(c, index)
	case FenceBrokerCmd:
		err = tx.fenceBroker(c)
	case UnfenceBrokerCmd:
		err = tx.unfenceBroker(c)
	case CreateTopicCmd:
		err = tx.createTopic(c)
	case DeleteTopicCmd:
		err = tx.deleteTopic(c)
	case AlterTopicConfigsCmd:
		err = tx.alterTopicConfigs(c)
	case CreatePartitionsCmd:
		err = tx.createPartitions(c)
	case AlterPartitionCmd:
		err = tx.alterPartition(c)
	case UnregisterBrokerCmd:
		err = tx.unregisterBroker(c)
	case OfflineReplicasCmd:
		err = tx.offlineReplicas(c)
	default:
		err = fmt.Errorf("%w: unsupported command %T", ErrInvalidRequest, cmd)
	}
	if err != nil {
		unchanged := shallowCopy(base)
		unchanged.Version = index
		return unchanged, err
	}
	return tx.next, nil
}

// applyConfiguration records a Raft configuration (at index) in the image and
// refreshes the brokers' Voter flags.
func applyConfiguration(base *Image, index uint64, members []Member) *Image {
	tx := &txn{next: shallowCopy(base)}
	tx.next.Version = index
	tx.next.Members = members
	for _, id := range base.SortedBrokerIDs() {
		b := base.Brokers[id]
		if v := isVoter(members, id); v != b.Voter {
			nb := *b
			nb.Voter = v
			tx.putBroker(&nb)
		}
	}
	return tx.next
}

func shallowCopy(img *Image) *Image {
	c := *img
	return &c
}

func isVoter(members []Member, id int32) bool {
	for _, m := range members {
		if m.ID == id {
			return m.Voter
		}
	}
	return false
}

// txn builds the next image copy-on-write: the brokers and topics maps are
// copied on first write, and a topic is cloned the first time it is changed,
// so unchanged brokers and topics stay shared with the previous image.
type txn struct {
	next          *Image
	brokersCopied bool
	topicsCopied  bool
	cloned        map[string]*Topic // topics already cloned in this txn
}

func (tx *txn) putBroker(b *Broker) {
	if !tx.brokersCopied {
		m := make(map[int32]*Broker, len(tx.next.Brokers)+1)
		for id, v := range tx.next.Brokers {
			m[id] = v
		}
		tx.next.Brokers = m
		tx.brokersCopied = true
	}
	tx.next.Brokers[b.ID] = b
}

func (tx *txn) copyTopics() {
	if !tx.topicsCopied {
		m := make(map[string]*Topic, len(tx.next.Topics)+1)
		for name, v := range tx.next.Topics {
			m[name] = v
		}
		tx.next.Topics = m
		tx.topicsCopied = true
	}
}

func (tx *txn) putTopic(t *Topic) {
	tx.copyTopics()
	tx.next.Topics[t.Name] = t
	if tx.cloned == nil {
		tx.cloned = map[string]*Topic{}
	}
	tx.cloned[t.Name] = t
}

// mutableTopic returns a private copy of the named topic that may be changed
// in place (but its partitions' Replicas/ISR slices must be replaced, not
// modified: they are still shared).
func (tx *txn) mutableTopic(name string) *Topic {
	if t, ok := tx.cloned[name]; ok {
		return t
	}
	t := cloneTopic(tx.next.Topics[name])
	tx.putTopic(t)
	return t
}

func (tx *txn) removeTopic(name string) {
	tx.copyTopics()
	delete(tx.next.Topics, name)
	delete(tx.cloned, name)
}

func (tx *txn) alive(id int32) bool { return tx.next.Brokers[id].Alive() }

// canServe is the election filter of one partition: alive brokers whose
// replica of it is not offline.
func (tx *txn) canServe(topic string, partition int32) func(int32) bool {
	return func(id int32) bool { return tx.next.Brokers[id].CanServe(topic, partition) }
}

func (tx *txn) initCluster(c InitClusterCmd) error {
	if c.ClusterID == "" {
		return fmt.Errorf("%w: cluster_id is empty", ErrInvalidRequest)
	}
	if tx.next.ClusterID == "" {
		tx.next.ClusterID = c.ClusterID
	}
	return nil
}

func (tx *txn) registerBroker(c RegisterBrokerCmd, index uint64) error {
	switch {
	case c.ID < 0:
		return fmt.Errorf("%w: broker id %d is negative", ErrInvalidRequest, c.ID)
	case c.HTTPAddr == "":
		return fmt.Errorf("%w: broker %d has no http_addr", ErrInvalidRequest, c.ID)
	case c.RaftAddr == "":
		return fmt.Errorf("%w: broker %d has no raft_addr", ErrInvalidRequest, c.ID)
	}
	old := tx.next.Brokers[c.ID]
	if old != nil && old.HTTPAddr == c.HTTPAddr && old.RaftAddr == c.RaftAddr && old.Rack == c.Rack && old.Incarnation == c.Incarnation {
		return nil // same incarnation: keep the epoch and the state
	}
	if err := addrConflict(tx.next, c); err != nil {
		return err
	}
	nb := &Broker{
		ID:          c.ID,
		HTTPAddr:    c.HTTPAddr,
		RaftAddr:    c.RaftAddr,
		Rack:        c.Rack,
		State:       BrokerFenced,
		Epoch:       int64(index),
		Incarnation: c.Incarnation,
		Voter:       isVoter(tx.next.Members, c.ID),
	}
	if old != nil && old.Incarnation == c.Incarnation {
		// The same process (new addresses or rack): its offline logs are
		// still offline. A new incarnation recovered them on start.
		nb.OfflineReplicas = old.OfflineReplicas
	}
	tx.putBroker(nb)
	if old != nil {
		// The previous incarnation is gone: it must not stay leader or in
		// any ISR.
		tx.fenceEffects(c.ID)
	}
	return nil
}

// addrConflict says whether another alive broker of img uses one of c's
// addresses. Two live brokers at one address is a misconfiguration (e.g. a
// copied config file); a fenced one may be a dead node being replaced.
func addrConflict(img *Image, c RegisterBrokerCmd) error {
	for _, id := range img.SortedBrokerIDs() {
		b := img.Brokers[id]
		if id == c.ID || !b.Alive() {
			continue
		}
		if b.HTTPAddr == c.HTTPAddr {
			return fmt.Errorf("%w: http_addr %q is already used by alive broker %d", ErrInvalidRequest, c.HTTPAddr, id)
		}
		if b.RaftAddr == c.RaftAddr {
			return fmt.Errorf("%w: raft_addr %q is already used by alive broker %d", ErrInvalidRequest, c.RaftAddr, id)
		}
	}
	return nil
}

func (tx *txn) checkBrokerEpoch(id int32, epoch int64) (*Broker, error) {
	b := tx.next.Brokers[id]
	if b == nil {
		return nil, fmt.Errorf("%w: broker %d is not registered", ErrUnknownBroker, id)
	}
	if epoch != 0 && epoch != b.Epoch {
		return nil, fmt.Errorf("%w: broker %d has epoch %d, not %d", ErrStaleEpoch, id, b.Epoch, epoch)
	}
	return b, nil
}

func (tx *txn) fenceBroker(c FenceBrokerCmd) error {
	b, err := tx.checkBrokerEpoch(c.ID, c.Epoch)
	if err != nil {
		return err
	}
	if b.State != BrokerFenced {
		nb := *b
		nb.State = BrokerFenced
		tx.putBroker(&nb)
	}
	// Run the partition effects even if already fenced: they are idempotent
	// and repair any partition that still names the broker.
	tx.fenceEffects(c.ID)
	return nil
}

// fenceEffects removes a fenced broker from every ISR it is not the last
// member of, and re-elects every partition it led.
func (tx *txn) fenceEffects(id int32) {
	for _, name := range tx.next.SortedTopicNames() {
		t := tx.next.Topics[name]
		unclean := uncleanElectionEnabled(t)
		for i := range t.Partitions {
			p := t.Partitions[i]
			if !p.InISR(id) && p.Leader != id {
				continue
			}
			isr := p.ISR
			if p.InISR(id) && len(p.ISR) > 1 {
				isr = without(p.ISR, id)
			}
			leader := p.Leader
			if leader == id {
				leader, isr = electLeader(p.Replicas, isr, tx.canServe(name, p.Partition), unclean)
			}
			tx.setPartition(name, i, leader, isr)
		}
	}
}

func (tx *txn) offlineReplicas(c OfflineReplicasCmd) error {
	if c.Epoch == 0 {
		return fmt.Errorf("%w: broker %d: an offline report must name the broker epoch", ErrInvalidRequest, c.ID)
	}
	b, err := tx.checkBrokerEpoch(c.ID, c.Epoch)
	if err != nil {
		return err
	}
	offline := slices.Clone(b.OfflineReplicas)
	var listed []TopicPartition
	for _, tp := range c.Partitions {
		if p := tx.next.Partition(tp.Topic, tp.Partition); p == nil || !p.IsReplica(c.ID) || slices.Contains(listed, tp) {
			continue
		}
		listed = append(listed, tp)
		if !slices.Contains(offline, tp) {
			offline = append(offline, tp)
		}
	}
	if len(offline) > len(b.OfflineReplicas) {
		sortTopicPartitions(offline)
		nb := *b
		nb.OfflineReplicas = offline
		tx.putBroker(&nb)
	}
	// The effects run for every listed partition, recorded before or not:
	// they are idempotent and repair a partition that still names the broker.
	sortTopicPartitions(listed)
	for _, tp := range listed {
		p := tx.next.Partition(tp.Topic, tp.Partition)
		isr := p.ISR
		if p.InISR(c.ID) && len(isr) > 1 {
			isr = without(isr, c.ID)
		}
		leader := p.Leader
		if leader == c.ID {
			leader, isr = electLeader(p.Replicas, isr, tx.canServe(tp.Topic, tp.Partition), uncleanElectionEnabled(tx.next.Topics[tp.Topic]))
		}
		tx.setPartition(tp.Topic, int(tp.Partition), leader, isr)
	}
	return nil
}

func sortTopicPartitions(tps []TopicPartition) {
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
}

func (tx *txn) unregisterBroker(c UnregisterBrokerCmd) error {
	b := tx.next.Brokers[c.ID]
	if b == nil {
		return fmt.Errorf("%w: broker %d is not registered", ErrUnknownBroker, c.ID)
	}
	if b.Alive() {
		return fmt.Errorf("%w: broker %d is alive; stop it for good before removing it", ErrInvalidRequest, c.ID)
	}
	for _, name := range tx.next.SortedTopicNames() {
		for _, p := range tx.next.Topics[name].Partitions {
			if len(p.ISR) == 1 && p.ISR[0] == c.ID {
				return fmt.Errorf("%w: broker %d holds the only in-sync copy of %s-%d", ErrInvalidRequest, c.ID, name, p.Partition)
			}
		}
	}
	m := make(map[int32]*Broker, len(tx.next.Brokers))
	for id, v := range tx.next.Brokers {
		if id != c.ID {
			m[id] = v
		}
	}
	tx.next.Brokers = m
	tx.brokersCopied = true
	return nil
}

func (tx *txn) unfenceBroker(c UnfenceBrokerCmd) error {
	b, err := tx.checkBrokerEpoch(c.ID, c.Epoch)
	if err != nil {
		return err
	}
	if b.State == BrokerAlive {
		return nil
	}
	nb := *b
	nb.State = BrokerAlive
	tx.putBroker(&nb)
	// Leaderless partitions it can lead get it now (an ISR member, or any
	// replica where the topic allows unclean election).
	for _, name := range tx.next.SortedTopicNames() {
		t := tx.next.Topics[name]
		unclean := uncleanElectionEnabled(t)
		for i := range t.Partitions {
			p := t.Partitions[i]
			if p.Leader != NoLeader || !p.IsReplica(c.ID) {
				continue
			}
			leader, isr := electLeader(p.Replicas, p.ISR, tx.canServe(name, p.Partition), unclean)
			tx.setPartition(name, i, leader, isr)
		}
	}
	return nil
}

// electLeader picks the first alive replica, in preferred order, that is in
// the ISR. Failing that, with unclean election allowed, the first alive
// replica becomes leader and sole ISR member (it may lack acknowledged
// records: that is what "unclean" means). Otherwise there is no leader and
// the ISR is kept.
func electLeader(replicas, isr []int32, alive func(int32) bool, unclean bool) (int32, []int32) {
	for _, r := range replicas {
		if slices.Contains(isr, r) && alive(r) {
			return r, isr
		}
	}
	if unclean {
		for _, r := range replicas {
			if alive(r) {
				return r, []int32{r}
			}
		}
	}
	return NoLeader, isr
}

// setPartition sets a partition's leader and ISR, bumping the partition epoch
// if anything changed and the leader epoch if the leader changed.
func (tx *txn) setPartition(topic string, i int, leader int32, isr []int32) {
	cur := tx.next.Topics[topic].Partitions[i]
	if cur.Leader == leader && slices.Equal(cur.ISR, isr) {
		return
	}
	t := tx.mutableTopic(topic)
	p := &t.Partitions[i]
	if p.Leader != leader {
		p.LeaderEpoch++
	}
	p.Leader = leader
	p.ISR = slices.Clone(isr)
	p.PartitionEpoch++
}

func without(list []int32, id int32) []int32 {
	out := make([]int32, 0, len(list))
	for _, v := range list {
		if v != id {
			out = append(out, v)
		}
	}
	return out
}

func (tx *txn) createTopic(c CreateTopicCmd) error {
	if err := ValidateTopicName(c.Name); err != nil {
		return err
	}
	if tx.next.Topics[c.Name] != nil {
		return fmt.Errorf("%w: %q", ErrTopicExists, c.Name)
	}
	if _, err := uuid.Parse(c.ID); err != nil {
		return fmt.Errorf("%w: topic id %q is not a UUID", ErrInvalidRequest, c.ID)
	}
	if err := ValidateTopicConfigs(c.Configs); err != nil {
		return err
	}
	if len(c.Assignments) == 0 {
		return fmt.Errorf("%w: topic %q needs at least one partition", ErrInvalidPartitions, c.Name)
	}
	if err := tx.validateAssignments(c.Name, 0, len(c.Assignments[0]), c.Assignments); err != nil {
		return err
	}
	configs := make(map[string]string, len(c.Configs))
	for k, v := range c.Configs {
		configs[k] = v
	}
	t := &Topic{Name: c.Name, ID: c.ID, Internal: c.Internal, Configs: configs}
	t.Partitions = newPartitions(c.Name, 0, c.Assignments)
	tx.putTopic(t)
	return nil
}

func newPartitions(topic string, first int, assignments [][]int32) []Partition {
	out := make([]Partition, len(assignments))
	for i, replicas := range assignments {
		out[i] = Partition{
			Topic:     topic,
			Partition: int32(first + i),
			Replicas:  slices.Clone(replicas),
			Leader:    replicas[0],
			ISR:       slices.Clone(replicas),
		}
	}
	return out
}

// validateAssignments checks new partitions first..first+len-1: every list
// has rf distinct, registered, unfenced brokers.
func (tx *txn) validateAssignments(topic string, first, rf int, assignments [][]int32) error {
	if total := first + len(assignments); total > MaxPartitionsPerTopic {
		return fmt.Errorf("%w: topic %q would have %d partitions, the maximum is %d",
			ErrInvalidPartitions, topic, total, MaxPartitionsPerTopic)
	}
	if rf < 1 {
		return fmt.Errorf("%w: partition %d of topic %q has no replicas", ErrInvalidReplicationFactor, first, topic)
	}
	for i, replicas := range assignments {
		p := first + i
		if len(replicas) != rf {
			return fmt.Errorf("%w: partition %d of topic %q has %d replicas, expected %d",
				ErrInvalidReplicationFactor, p, topic, len(replicas), rf)
		}
		for j, id := range replicas {
			if slices.Contains(replicas[:j], id) {
				return fmt.Errorf("%w: partition %d of topic %q lists broker %d twice",
					ErrInvalidReplicationFactor, p, topic, id)
			}
			b := tx.next.Brokers[id]
			if b == nil {
				return fmt.Errorf("%w: partition %d of topic %q is assigned to broker %d, which is not registered",
					ErrUnknownBroker, p, topic, id)
			}
			if !b.Alive() {
				return fmt.Errorf("%w: broker %d (a replica of partition %d of topic %q)",
					ErrFencedBroker, id, p, topic)
			}
		}
	}
	return nil
}

func (tx *txn) deleteTopic(c DeleteTopicCmd) error {
	t := tx.next.Topics[c.Name]
	if t == nil {
		return fmt.Errorf("%w: topic %q does not exist", ErrUnknownTopic, c.Name)
	}
	if c.ID != "" && c.ID != t.ID {
		return fmt.Errorf("%w: topic %q has id %s, not %s", ErrUnknownTopic, c.Name, t.ID, c.ID)
	}
	if t.Internal {
		return fmt.Errorf("%w: topic %q is internal and cannot be deleted", ErrInvalidTopic, c.Name)
	}
	tx.removeTopic(c.Name)
	// Offline replicas of the topic went with it (its logs are deleted); a
	// topic created under the same name later starts with healthy ones.
	for _, id := range tx.next.SortedBrokerIDs() {
		b := tx.next.Brokers[id]
		kept := slices.DeleteFunc(slices.Clone(b.OfflineReplicas), func(tp TopicPartition) bool { return tp.Topic == c.Name })
		if len(kept) != len(b.OfflineReplicas) {
			nb := *b
			nb.OfflineReplicas = kept
			if len(kept) == 0 {
				nb.OfflineReplicas = nil
			}
			tx.putBroker(&nb)
		}
	}
	return nil
}

func (tx *txn) alterTopicConfigs(c AlterTopicConfigsCmd) error {
	if tx.next.Topics[c.Name] == nil {
		return fmt.Errorf("%w: topic %q does not exist", ErrUnknownTopic, c.Name)
	}
	if err := ValidateTopicConfigs(c.Set); err != nil {
		return err
	}
	for _, key := range c.Reset {
		if _, ok := lookupConfigSpec(key); !ok {
			return fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, key)
		}
		if _, ok := c.Set[key]; ok {
			return fmt.Errorf("%w: config %q is both set and reset", ErrInvalidConfig, key)
		}
	}
	t := tx.mutableTopic(c.Name)
	for k, v := range c.Set {
		t.Configs[k] = v
	}
	for _, k := range c.Reset {
		delete(t.Configs, k)
	}
	return nil
}

func (tx *txn) createPartitions(c CreatePartitionsCmd) error {
	t := tx.next.Topics[c.Topic]
	if t == nil {
		return fmt.Errorf("%w: topic %q does not exist", ErrUnknownTopic, c.Topic)
	}
	if int(c.FirstPartition) != len(t.Partitions) {
		return fmt.Errorf("%w: topic %q has %d partitions, the request expected %d",
			ErrStaleEpoch, c.Topic, len(t.Partitions), c.FirstPartition)
	}
	if len(c.Assignments) == 0 {
		return fmt.Errorf("%w: no partitions to add to topic %q", ErrInvalidPartitions, c.Topic)
	}
	if err := tx.validateAssignments(c.Topic, len(t.Partitions), t.ReplicationFactor(), c.Assignments); err != nil {
		return err
	}
	mt := tx.mutableTopic(c.Topic)
	mt.Partitions = append(mt.Partitions, newPartitions(c.Topic, len(t.Partitions), c.Assignments)...)
	return nil
}

func (tx *txn) alterPartition(c AlterPartitionCmd) error {
	p := tx.next.Partition(c.Topic, c.Partition)
	if p == nil {
		return fmt.Errorf("%w: topic %q has no partition %d", ErrUnknownTopic, c.Topic, c.Partition)
	}
	if c.ExpectedLeaderEpoch != p.LeaderEpoch || c.ExpectedPartitionEpoch != p.PartitionEpoch {
		return fmt.Errorf("%w: %s-%d is at leader_epoch %d, partition_epoch %d; the request expected %d, %d",
			ErrStaleEpoch, c.Topic, c.Partition, p.LeaderEpoch, p.PartitionEpoch,
			c.ExpectedLeaderEpoch, c.ExpectedPartitionEpoch)
	}
	if len(c.ISR) == 0 {
		return fmt.Errorf("%w: %s-%d: isr is empty", ErrInvalidRequest, c.Topic, c.Partition)
	}
	for j, id := range c.ISR {
		if slices.Contains(c.ISR[:j], id) {
			return fmt.Errorf("%w: %s-%d: isr lists broker %d twice", ErrInvalidRequest, c.Topic, c.Partition, id)
		}
		if !p.IsReplica(id) {
			return fmt.Errorf("%w: %s-%d: isr member %d is not a replica", ErrInvalidRequest, c.Topic, c.Partition, id)
		}
		// ISR members must be alive, except a fenced last member, which stays
		// (the ISR is never emptied); a replica reported offline stays out
		// (it may only keep a place it still holds).
		if !tx.alive(id) && !(len(c.ISR) == 1 && p.InISR(id)) {
			return fmt.Errorf("%w: %s-%d: broker %d cannot join the isr", ErrFencedBroker, c.Topic, c.Partition, id)
		}
		if tx.next.Brokers[id].ReplicaOffline(c.Topic, c.Partition) && !p.InISR(id) {
			return fmt.Errorf("%w: %s-%d: the replica on broker %d is offline until it restarts", ErrInvalidRequest, c.Topic, c.Partition, id)
		}
	}
	if c.Leader != NoLeader {
		if !slices.Contains(c.ISR, c.Leader) {
			return fmt.Errorf("%w: %s-%d: leader %d is not in the isr", ErrInvalidRequest, c.Topic, c.Partition, c.Leader)
		}
		if !tx.next.Brokers[c.Leader].CanServe(c.Topic, c.Partition) {
			return fmt.Errorf("%w: %s-%d: broker %d cannot lead (fenced, or its replica is offline)", ErrFencedBroker, c.Topic, c.Partition, c.Leader)
		}
	}
	i := int(c.Partition)
	tx.setPartition(c.Topic, i, c.Leader, c.ISR)
	return nil
}
