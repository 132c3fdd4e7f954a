package metadata

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func brokersN(n int, racks ...string) []Broker {
	out := make([]Broker, n)
	for i := range out {
		out[i] = Broker{ID: int32(i + 1), State: BrokerAlive}
		if len(racks) > 0 {
			out[i].Rack = racks[i%len(racks)]
		}
	}
	return out
}

// checkPlacement verifies the structural properties every placement must
// have, and returns leader and replica counts per broker.
func checkPlacement(t *testing.T, brokers []Broker, got [][]int32, partitions, rf int) (leaders, replicas map[int32]int) {
	t.Helper()
	if len(got) != partitions {
		t.Fatalf("got %d partitions, want %d", len(got), partitions)
	}
	known := map[int32]bool{}
	leaders, replicas = map[int32]int{}, map[int32]int{}
	for _, b := range brokers {
		known[b.ID] = true
		leaders[b.ID], replicas[b.ID] = 0, 0
	}
	for i, rs := range got {
		if len(rs) != rf {
			t.Fatalf("partition %d has %d replicas, want %d: %v", i, len(rs), rf, got)
		}
		for j, id := range rs {
			if !known[id] {
				t.Fatalf("partition %d assigned to unknown broker %d", i, id)
			}
			if slices.Contains(rs[:j], id) {
				t.Fatalf("partition %d lists broker %d twice: %v", i, id, rs)
			}
			replicas[id]++
		}
		leaders[rs[0]]++
	}
	return leaders, replicas
}

func spread(counts map[int32]int) int {
	lo, hi := -1, -1
	for _, c := range counts {
		if lo == -1 || c < lo {
			lo = c
		}
		if c > hi {
			hi = c
		}
	}
	return hi - lo
}

func TestPlaceReplicasEvenSpread(t *testing.T) {
	for n := 1; n <= 9; n++ {
		brokers := brokersN(n)
		for rf := 1; rf <= n; rf++ {
			for p := 1; p <= 3*n+1; p++ {
				for start := 0; start < n; start++ {
					got, err := PlaceReplicas(brokers, p, rf, start)
					if err != nil {
						t.Fatalf("n=%d rf=%d p=%d: %v", n, rf, p, err)
					}
					leaders, replicas := checkPlacement(t, brokers, got, p, rf)
					if s := spread(leaders); s > 1 {
						t.Fatalf("n=%d rf=%d p=%d start=%d: leader counts %v differ by %d: %v", n, rf, p, start, leaders, s, got)
					}
					if s := spread(replicas); s > 1 {
						t.Fatalf("n=%d rf=%d p=%d start=%d: replica counts %v differ by %d: %v", n, rf, p, start, replicas, s, got)
					}
				}
			}
		}
	}
}

func TestPlaceReplicasRackAware(t *testing.T) {
	for _, racks := range [][]string{{"a", "b"}, {"a", "b", "c"}, {"r1", "r2", "r3", "r4"}} {
		for perRack := 1; perRack <= 3; perRack++ {
			n := perRack * len(racks)
			brokers := brokersN(n, racks...)
			rackOf := map[int32]string{}
			for _, b := range brokers {
				rackOf[b.ID] = b.Rack
			}
			for rf := 1; rf <= n; rf++ {
				for p := 1; p <= 2*n+1; p++ {
					for _, start := range []int{0, 1, n - 1} {
						name := fmt.Sprintf("racks=%d perRack=%d rf=%d p=%d start=%d", len(racks), perRack, rf, p, start)
						got, err := PlaceReplicas(brokers, p, rf, start)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						leaders, replicas := checkPlacement(t, brokers, got, p, rf)
						if s := spread(leaders); s > 1 {
							t.Fatalf("%s: leader counts %v differ by %d", name, leaders, s)
						}
						if s := spread(replicas); s > 1 {
							t.Fatalf("%s: replica counts %v differ by %d: %v", name, replicas, s, got)
						}
						want := min(rf, len(racks))
						for i, rs := range got {
							used := map[string]bool{}
							for _, id := range rs {
								used[rackOf[id]] = true
							}
							if len(used) != want {
								t.Fatalf("%s: partition %d %v spans %d racks, want %d", name, i, rs, len(used), want)
							}
							// Alternation: the first min(rf, racks) replicas are on distinct racks.
							first := map[string]bool{}
							for _, id := range rs[:want] {
								first[rackOf[id]] = true
							}
							if len(first) != want {
								t.Fatalf("%s: partition %d %v does not alternate racks", name, i, rs)
							}
						}
					}
				}
			}
		}
	}
}

func TestPlaceReplicasUnevenRacks(t *testing.T) {
	// Rack a has 3 brokers, b has 1, c has 2.
	brokers := []Broker{{ID: 1, Rack: "a"}, {ID: 2, Rack: "a"}, {ID: 3, Rack: "a"}, {ID: 4, Rack: "b"}, {ID: 5, Rack: "c"}, {ID: 6, Rack: "c"}}
	rackOf := map[int32]string{}
	for _, b := range brokers {
		rackOf[b.ID] = b.Rack
	}
	for rf := 1; rf <= 6; rf++ {
		for p := 1; p <= 13; p++ {
			got, err := PlaceReplicas(brokers, p, rf, p)
			if err != nil {
				t.Fatal(err)
			}
			leaders, _ := checkPlacement(t, brokers, got, p, rf)
			if s := spread(leaders); s > 1 {
				t.Fatalf("rf=%d p=%d: leader counts %v", rf, p, leaders)
			}
			for i, rs := range got {
				used := map[string]bool{}
				for _, id := range rs[:min(rf, 3)] {
					used[rackOf[id]] = true
				}
				if len(used) != min(rf, 3) {
					t.Fatalf("rf=%d p=%d: partition %d %v does not alternate racks", rf, p, i, rs)
				}
			}
		}
	}
}

func TestPlaceReplicasStartRotatesAndIgnoresInputOrder(t *testing.T) {
	brokers := brokersN(4)
	a, _ := PlaceReplicas(brokers, 1, 2, 0)
	b, _ := PlaceReplicas(brokers, 1, 2, 1)
	if a[0][0] == b[0][0] {
		t.Fatalf("start did not move the leader: %v %v", a, b)
	}
	reversed := slices.Clone(brokers)
	slices.Reverse(reversed)
	c, _ := PlaceReplicas(reversed, 5, 3, 2)
	d, _ := PlaceReplicas(brokers, 5, 3, 2)
	if fmt.Sprint(c) != fmt.Sprint(d) {
		t.Fatalf("input order matters: %v vs %v", c, d)
	}
	// Partly racked clusters are placed without racks.
	mixed := []Broker{{ID: 1, Rack: "a"}, {ID: 2}, {ID: 3, Rack: "b"}}
	if _, err := PlaceReplicas(mixed, 3, 3, 0); err != nil {
		t.Fatal(err)
	}
}

func TestPlaceReplicasErrors(t *testing.T) {
	brokers := brokersN(3)
	for _, tc := range []struct {
		brokers        []Broker
		partitions, rf int
		want           error
	}{
		{brokers, 1, 4, ErrInvalidReplicationFactor},
		{brokers, 1, 0, ErrInvalidReplicationFactor},
		{brokers, 1, -1, ErrInvalidReplicationFactor},
		{nil, 1, 1, ErrInvalidReplicationFactor},
		{brokers, 0, 1, ErrInvalidPartitions},
		{brokers, MaxPartitionsPerTopic + 1, 1, ErrInvalidPartitions},
		{[]Broker{{ID: 1}, {ID: 1}}, 1, 1, ErrInvalidRequest},
	} {
		_, err := PlaceReplicas(tc.brokers, tc.partitions, tc.rf, 0)
		if !errors.Is(err, tc.want) {
			t.Errorf("brokers=%d partitions=%d rf=%d: %v, want %v", len(tc.brokers), tc.partitions, tc.rf, err, tc.want)
		}
	}
	if _, err := PlaceReplicas(brokers, 2, 1, -7); err != nil {
		t.Fatalf("negative start: %v", err)
	}
}
