package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/client"
)

// Tests of what the coordinator does while a durable write is slow: the
// write holds no lock another path needs (see the lock order in doc.go).

// groupBeside returns a group name that lives in the same offsets
// partition as group, so that no per-partition lock can hide behind the
// per-group one.
func groupBeside(t *testing.T, group string) string {
	t.Helper()
	want := OffsetsPartition(group, testOffsetsParts)
	for i := range 1000 {
		if name := fmt.Sprintf("other-%d", i); OffsetsPartition(name, testOffsetsParts) == want {
			return name
		}
	}
	t.Fatalf("no group name beside %q", group)
	return ""
}

func (f *coordFixture) joinGroup(group string, session int64) client.MemberAssignment {
	f.t.Helper()
	ma, err := f.c.Join(context.Background(), group, client.JoinGroupRequest{Topics: []string{"orders"}, SessionTimeoutMS: &session}, "h")
	if err != nil {
		f.t.Fatalf("join %s: %v", group, err)
	}
	return ma
}

// runTimers runs the coordinator's timer loop until the test ends.
func (f *coordFixture) runTimers() {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.c.Run(ctx)
	}()
	f.t.Cleanup(func() { stop(); <-done })
}

// within runs fn and fails the test if it does not return within a few
// seconds (fn is left running; the test's cleanup unblocks it).
func within(t *testing.T, what string, fn func() error) {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- fn() }()
	select {
	case err := <-res:
		if err != nil {
			t.Errorf("%s during a slow commit: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s waited for the durable write of a commit of another call", what)
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(cond func() (bool, error)) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within 5s (last error: %v)", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestCoordinatorSlowCommitBlocksNothingElse: a commit whose append to the
// offsets topic hangs (a full or slow disk, a follower slow to acknowledge)
// used to hold its group's lock throughout, which stopped Stats (and so
// /metrics), describes and heartbeats of the group, and — through the timer
// loop's walk of every group on a topic change — session expiry of every
// group on the node. None of them waits for it now, and the commit is not
// visible until it is durable.
func TestCoordinatorSlowCommitBlocksNothingElse(t *testing.T) {
	f := newCoordWith(t, func(o *CoordinatorOptions) { o.ExpiryInterval = time.Millisecond })
	f.runTimers()
	f.env.setTopic("orders", 2, 0, 100)
	ctx := context.Background()
	other := groupBeside(t, "g")
	a := f.joinGroup("g", 60_000)
	a2 := f.joinGroup("g", 60_000)
	steady := f.joinGroup(other, 60_000)
	f.joinGroup(other, 1_000) // expires during the commit
	hb, err := f.c.Heartbeat(ctx, "g", a.MemberID)
	if err != nil {
		t.Fatal(err)
	}

	open := f.env.gateAppends("g")
	t.Cleanup(open)
	committed := make(chan error, 1)
	go func() {
		_, err := f.c.Commit(ctx, "g", client.CommitRequest{MemberID: a.MemberID, Generation: &hb.Generation,
			Offsets: []client.CommitOffset{{Topic: "orders", Partition: 0, Offset: 10}}})
		committed <- err
	}()
	select {
	case <-f.env.appending:
	case <-time.After(5 * time.Second):
		t.Fatal("the commit never reached its append")
	}

	within(t, "Stats", func() error { f.c.Stats(); return nil })
	within(t, "a describe of the same group", func() error {
		d, err := f.c.Describe(ctx, "g")
		if err != nil {
			return err
		}
		for _, o := range d.Offsets {
			if o.CommittedOffset != nil {
				return fmt.Errorf("shows committed offset %d before it is durable", *o.CommittedOffset)
			}
		}
		return nil
	})
	within(t, "a heartbeat of another member of the same group", func() error {
		_, err := f.c.Heartbeat(ctx, "g", a2.MemberID)
		return err
	})
	within(t, "a heartbeat of another group", func() error {
		_, err := f.c.Heartbeat(ctx, other, steady.MemberID)
		return err
	})
	f.c.TopicsChanged() // the timer loop walks every group
	f.advance(2 * time.Second)
	within(t, "session expiry of another group", func() error {
		return eventually(func() (bool, error) { // a describe, not a heartbeat: that would keep it alive
			d, err := f.c.Describe(ctx, other)
			return err == nil && len(d.Members) == 1 && d.Members[0].MemberID == steady.MemberID, err
		})
	})

	open()
	select {
	case err := <-committed:
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the commit did not finish once its append did")
	}
	offs, err := f.c.Offsets(ctx, "g")
	if err != nil || len(offs.Offsets) != 1 || *offs.Offsets[0].CommittedOffset != 10 {
		t.Fatalf("offsets once durable: %+v %v", offs, err)
	}
}

// TestCoordinatorWaitForTurnHonoursContext: a group has one durable write
// in flight; a second writer waits for its turn only as long as its
// context allows, and one that gave up wrote and applied nothing.
func TestCoordinatorWaitForTurnHonoursContext(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 1, 0, 100)
	ctx := context.Background()
	m := f.join("orders")
	commit := func(ctx context.Context, off int64) error {
		_, err := f.c.Commit(ctx, "g", client.CommitRequest{MemberID: m.MemberID, Generation: &m.Generation,
			Offsets: []client.CommitOffset{{Topic: "orders", Partition: 0, Offset: off}}})
		return err
	}
	open := f.env.gateAppends("g")
	t.Cleanup(open)
	first := make(chan error, 1)
	go func() { first <- commit(ctx, 10) }()
	<-f.env.appending

	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() { second <- commit(sctx, 20) }()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a commit that waited past its deadline: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a commit waiting for its turn ignored its context")
	}
	open()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	offs, err := f.c.Offsets(ctx, "g")
	if err != nil || *offs.Offsets[0].CommittedOffset != 10 {
		t.Fatalf("offsets: %+v %v (want the first commit's 10: the second gave up)", offs, err)
	}
	f.env.mu.Lock()
	defer f.env.mu.Unlock()
	for _, r := range f.env.logs[f.c.Partition("g")] {
		if rec, err := DecodeRecord(r.Key, r.Value); err == nil && rec.Kind == KindOffsetCommit && rec.Offset == 20 {
			t.Fatal("the commit that gave up was written")
		}
	}
}

// TestCoordinatorGenerationsDurableBeforeLearnedWhileWriting: while a
// join's generation is being written, a member expires (a later
// generation, in memory only); a heartbeat that would learn it waits for
// its own write, so every generation a member is told is in the log first.
func TestCoordinatorGenerationsDurableBeforeLearnedWhileWriting(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 4, 0, 100)
	ctx := context.Background()
	short := f.joinGroup("g", 1_000)
	steady := f.joinGroup("g", 60_000)
	if _, err := f.c.Heartbeat(ctx, "g", steady.MemberID); err != nil {
		t.Fatal(err)
	}
	open := f.env.gateAppends("g")
	t.Cleanup(open)
	type answer struct {
		ma  client.MemberAssignment
		err error
	}
	joined := make(chan answer, 1)
	go func() {
		ma, err := f.c.Join(ctx, "g", client.JoinGroupRequest{Topics: []string{"orders"}}, "h")
		joined <- answer{ma, err}
	}()
	<-f.env.appending
	f.advance(2 * time.Second)
	f.c.expire()
	beat := make(chan answer, 1)
	go func() {
		ma, err := f.c.Heartbeat(ctx, "g", steady.MemberID)
		beat <- answer{ma, err}
	}()
	open()
	j, b := <-joined, <-beat
	if j.err != nil || b.err != nil {
		t.Fatalf("join: %v, heartbeat: %v", j.err, b.err)
	}
	if b.ma.Generation <= j.ma.Generation {
		t.Fatalf("heartbeat after an expiry learned generation %d, the join %d", b.ma.Generation, j.ma.Generation)
	}
	written := map[int32]bool{}
	f.env.mu.Lock()
	for _, r := range f.env.logs[f.c.Partition("g")] {
		if rec, err := DecodeRecord(r.Key, r.Value); err == nil && rec.Kind == KindGroupMetadata && !rec.Tombstone {
			written[rec.Generation] = true
		}
	}
	f.env.mu.Unlock()
	for _, gen := range []int32{j.ma.Generation, b.ma.Generation} {
		if !written[gen] {
			t.Errorf("generation %d was told to a member but never written (written: %v)", gen, written)
		}
	}
	if _, err := f.c.Heartbeat(ctx, "g", short.MemberID); codeOf(err) != "UNKNOWN_MEMBER_ID" {
		t.Fatalf("the expired member: %v", err)
	}
}

// TestCoordinatorHandsOverAPartitionItsDiskRefuses: a coordinator whose
// disk refuses the offsets partition's writes (full, failing) can take no
// join: every join writes a generation. The fault harness saw a group's
// joins fail with KAFKA_STORAGE_ERROR for as long as its coordinator's
// disk was full. The coordinator now hands the partition to another
// in-sync replica and answers NOT_COORDINATOR, which clients retry there;
// without another in-sync replica it answers the disk's error and stays.
func TestCoordinatorHandsOverAPartitionItsDiskRefuses(t *testing.T) {
	f := newCoord(t)
	f.env.setTopic("orders", 1, 0, 100)
	ctx := context.Background()
	f.join("orders")
	full := fmt.Errorf("%w: write segment: %w", ErrDiskRefused, syscall.ENOSPC)
	f.env.mu.Lock()
	f.env.failApp = full
	f.env.mu.Unlock()
	join := func() error {
		_, err := f.c.Join(ctx, "g", client.JoinGroupRequest{Topics: []string{"orders"}}, "h")
		return err
	}

	// No other in-sync replica: the disk's error, and the partition stays.
	if err := join(); !errors.Is(err, syscall.ENOSPC) || codeOf(err) != "" {
		t.Fatalf("join on a full disk with nowhere to go: %v, want the disk's error", err)
	}
	if _, err := f.c.Describe(ctx, "g"); err != nil {
		t.Fatalf("the partition was given up with nowhere to go: %v", err)
	}

	f.env.mu.Lock()
	f.env.handOverTo = 2
	f.env.mu.Unlock()
	if err := join(); codeOf(err) != "NOT_COORDINATOR" || !strings.Contains(err.Error(), "moved to broker 2") {
		t.Fatalf("join on a full disk: %v, want NOT_COORDINATOR naming broker 2", err)
	}
	p := f.c.Partition("g")
	f.env.mu.Lock()
	handed := slices.Clone(f.env.handedOver)
	f.env.mu.Unlock()
	if !slices.Equal(handed, []int32{p}) {
		t.Fatalf("handed over %v, want [%d]", handed, p)
	}
	if _, err := f.c.Describe(ctx, "g"); codeOf(err) != "NOT_COORDINATOR" {
		t.Fatalf("describe after the handover: %v, want NOT_COORDINATOR", err)
	}
}
