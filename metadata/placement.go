package metadata

import (
	"cmp"
	"fmt"
	"slices"
)

// PlaceReplicas assigns replicas for `partitions` new partitions with
// replication factor rf over brokers (which should be the alive, unfenced
// ones; their order does not matter). It returns one replica list per
// partition, preferred leader first. start rotates the layout (the first
// partition's leader is the start-th broker), so that successive topics do
// not all lead on the same broker.
//
// Leaders go round-robin, so leader counts differ by at most one. Without
// racks, replica counts also differ by at most one, and the followers of one
// broker's partitions are spread over different brokers.
//
// Racks are used when every broker has one and there are at least two: the
// brokers are ordered alternating racks (as Kafka does) and every partition
// spans min(rf, racks) racks, its first replicas on distinct racks. With
// equally sized racks replica counts still differ by at most one; with uneven
// racks rack diversity wins over balance.
func PlaceReplicas(brokers []Broker, partitions, rf, start int) ([][]int32, error) {
	n := len(brokers)
	switch {
	case partitions < 1:
		return nil, fmt.Errorf("%w: partition count %d must be at least 1", ErrInvalidPartitions, partitions)
	case partitions > MaxPartitionsPerTopic:
		return nil, fmt.Errorf("%w: partition count %d is above the maximum %d", ErrInvalidPartitions, partitions, MaxPartitionsPerTopic)
	case rf < 1:
		return nil, fmt.Errorf("%w: replication factor %d must be at least 1", ErrInvalidReplicationFactor, rf)
	case rf > n:
		return nil, fmt.Errorf("%w: replication factor %d is larger than the %d available brokers",
			ErrInvalidReplicationFactor, rf, n)
	}
	sorted := slices.Clone(brokers)
	slices.SortFunc(sorted, func(a, b Broker) int { return cmp.Compare(a.ID, b.ID) })
	for i := 1; i < n; i++ {
		if sorted[i].ID == sorted[i-1].ID {
			return nil, fmt.Errorf("%w: broker %d is listed twice", ErrInvalidRequest, sorted[i].ID)
		}
	}
	s := ((start % n) + n) % n
	arranged, numRacks, even := rackAlternated(sorted)
	switch {
	case numRacks < 2:
		return placeRoundRobin(sorted, partitions, rf, s), nil
	case even:
		return placeEvenRacks(arranged, numRacks, partitions, rf, s), nil
	default:
		return placeUnevenRacks(arranged, numRacks, partitions, rf, s), nil
	}
}

// placeRoundRobin lays the replica slots out column by column: column j (the
// j-th replica of every partition) is a run of consecutive brokers that starts
// where column j-1's run ended, so all slots together go round-robin and
// every broker gets floor or ceil of partitions*rf/n replicas. With
// r = partitions mod n, consecutive columns are offset by r; after each
// n/gcd(n,r) columns the cover is uniform and the next column shifts by one
// more, which keeps the replicas of one partition distinct.
func placeRoundRobin(brokers []Broker, partitions, rf, start int) [][]int32 {
	n := len(brokers)
	r := partitions % n
	k := n / gcd(n, r)
	out := make([][]int32, partitions)
	for i := range out {
		replicas := make([]int32, rf)
		for j := range replicas {
			replicas[j] = brokers[(start+i+j*r+j/k)%n].ID
		}
		out[i] = replicas
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// rackAlternated orders brokers rack by rack in turn (racks by name, brokers
// by id within a rack), e.g. racks a:[1,2] b:[3,4] c:[5] -> 1,3,5,2,4. It
// returns 0 racks when some broker has no rack, and whether all racks have
// the same number of brokers.
func rackAlternated(sorted []Broker) (arranged []Broker, numRacks int, even bool) {
	byRack := map[string][]Broker{}
	var racks []string
	for _, b := range sorted {
		if b.Rack == "" {
			return nil, 0, false
		}
		if _, ok := byRack[b.Rack]; !ok {
			racks = append(racks, b.Rack)
		}
		byRack[b.Rack] = append(byRack[b.Rack], b)
	}
	slices.Sort(racks)
	even = true
	out := make([]Broker, 0, len(sorted))
	for round := 0; len(out) < len(sorted); round++ {
		for _, rack := range racks {
			if list := byRack[rack]; round < len(list) {
				out = append(out, list[round])
			}
			even = even && len(byRack[rack]) == len(byRack[racks[0]])
		}
	}
	return out, len(racks), even
}

// placeEvenRacks relies on the alternated list cycling through the racks
// (position x is on rack x mod racks), so any run of consecutive positions
// spans as many racks as it can. Each full round of n partitions takes
// consecutive positions i..i+rf-1 (each broker leads once and holds rf
// replicas). The last r < n partitions take consecutive, non-overlapping runs
// of rf positions (one contiguous stretch, so replica counts stay within
// one); partition i leads at offset (i*g/n) mod g of its run, g = gcd(n, rf),
// which makes the r leaders distinct.
func placeEvenRacks(arranged []Broker, numRacks, partitions, rf, start int) [][]int32 {
	n := len(arranged)
	full := partitions - partitions%n
	g := gcd(n, rf)
	out := make([][]int32, partitions)
	positions := make([]int, rf)
	for i := range out {
		if i < full {
			for j := range positions {
				positions[j] = (start + i + j) % n
			}
		} else {
			k := i - full
			lead := (k * g / n) % g
			for j := range positions {
				positions[j] = (start + k*rf + (lead+j)%rf) % n
			}
		}
		out[i] = orderByRack(arranged, numRacks, positions)
	}
	return out
}

// orderByRack returns the brokers at positions, the first one first, then
// each next one from the least used rack so far (ties: in positions order),
// so a partition's first replicas are on distinct racks.
func orderByRack(arranged []Broker, numRacks int, positions []int) []int32 {
	used := map[string]int{}
	taken := make([]bool, len(positions))
	ids := make([]int32, 0, len(positions))
	for len(ids) < len(positions) {
		best := -1
		for j, p := range positions {
			if taken[j] {
				continue
			}
			if best == -1 || used[arranged[p].Rack] < used[arranged[positions[best]].Rack] {
				best = j
			}
			if len(ids) == 0 {
				break // the leader stays first
			}
		}
		taken[best] = true
		used[arranged[positions[best]].Rack]++
		ids = append(ids, arranged[positions[best]].ID)
	}
	return ids
}

// placeUnevenRacks puts leaders round-robin over the rack-alternated list,
// then fills follower columns one at a time: each slot takes, among brokers
// not yet in the partition, one on a rack the partition does not use yet
// (while such racks remain), the least loaded, and then the nearest after
// the leader in the list (which rotates ties across partitions).
func placeUnevenRacks(arranged []Broker, numRacks, partitions, rf, start int) [][]int32 {
	n := len(arranged)
	load := make([]int, n)           // replicas per position in arranged
	pos := make([][]int, partitions) // chosen positions per partition
	racks := make([]map[string]bool, partitions)
	for i := range pos {
		lead := (start + i) % n
		pos[i] = []int{lead}
		racks[i] = map[string]bool{arranged[lead].Rack: true}
		load[lead]++
	}
	for j := 1; j < rf; j++ {
		for i := range pos {
			lead := pos[i][0]
			needNewRack := len(racks[i]) < numRacks
			best := -1
			for d := 1; d < n; d++ {
				c := (lead + d) % n
				if slices.Contains(pos[i], c) {
					continue
				}
				if needNewRack && racks[i][arranged[c].Rack] {
					continue
				}
				if best == -1 || load[c] < load[best] {
					best = c
				}
			}
			pos[i] = append(pos[i], best)
			racks[i][arranged[best].Rack] = true
			load[best]++
		}
	}
	out := make([][]int32, partitions)
	for i, ps := range pos {
		ids := make([]int32, len(ps))
		for j, p := range ps {
			ids[j] = arranged[p].ID
		}
		out[i] = ids
	}
	return out
}
