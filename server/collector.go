package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports per-partition log gauges and Raft state at scrape time,
// reading live values instead of keeping copies up to date.
type collector struct {
	n          *Node
	logSize    *prometheus.Desc
	logStart   *prometheus.Desc
	logEnd     *prometheus.Desc
	hw         *prometheus.Desc
	segments   *prometheus.Desc
	offline    *prometheus.Desc
	raftState  *prometheus.Desc
	raftTerm   *prometheus.Desc
	raftCommit *prometheus.Desc
	raftApply  *prometheus.Desc
	raftMember *prometheus.Desc
	ready      *prometheus.Desc
	members    *prometheus.Desc
	rebalances *prometheus.Desc
	lag        *prometheus.Desc
	openFiles  *prometheus.Desc
	maxFiles   *prometheus.Desc
	closed     *prometheus.Desc
	failed     *prometheus.Desc
}

func newCollector(n *Node) *collector {
	tp := []string{"topic", "partition"}
	return &collector{
		n:          n,
		logSize:    prometheus.NewDesc("weir_log_size_bytes", "Bytes of a partition's log.", tp, nil),
		logStart:   prometheus.NewDesc("weir_log_start_offset", "Log start offset.", tp, nil),
		logEnd:     prometheus.NewDesc("weir_log_end_offset", "Log end offset (LEO).", tp, nil),
		hw:         prometheus.NewDesc("weir_high_watermark", "High watermark.", tp, nil),
		segments:   prometheus.NewDesc("weir_log_segments", "Segments in a partition's log.", tp, nil),
		offline:    prometheus.NewDesc("weir_log_offline", "1 while a partition's log is offline after a failed fsync or rename (until a restart).", tp, nil),
		raftState:  prometheus.NewDesc("weir_raft_state", "Raft state of this node (1 for the current state).", []string{"state"}, nil),
		raftTerm:   prometheus.NewDesc("weir_raft_term", "Current Raft term.", nil, nil),
		raftCommit: prometheus.NewDesc("weir_raft_commit_index", "Raft commit index.", nil, nil),
		raftApply:  prometheus.NewDesc("weir_raft_applied_index", "Raft applied index.", nil, nil),
		raftMember: prometheus.NewDesc("weir_raft_member", "A member of the committed Raft configuration, as this node knows it (always 1).",
			[]string{"node_id", "raft_addr", "suffrage"}, nil),
		ready:      prometheus.NewDesc("weir_ready", "1 when the node is ready.", nil, nil),
		members:    prometheus.NewDesc("weir_group_members", "Members of a consumer group this node coordinates.", []string{"group"}, nil),
		rebalances: prometheus.NewDesc("weir_group_rebalances_total", "Generation changes of a group since this node became its coordinator.", []string{"group"}, nil),
		lag: prometheus.NewDesc("weir_group_lag", "High watermark minus committed offset, per group and partition (refreshed every few seconds).",
			[]string{"group", "topic", "partition"}, nil),
		openFiles: prometheus.NewDesc("weir_log_open_files", "Segment files open now.", nil, nil),
		maxFiles:  prometheus.NewDesc("weir_log_max_open_files", "Budget of open segment files (log_max_open_files; 0: none).", nil, nil),
		closed:    prometheus.NewDesc("weir_log_files_closed_total", "Segment files closed to stay within the budget.", nil, nil),
		failed:    prometheus.NewDesc("weir_replicas_open_failed", "Replicas assigned to this node whose log could not be opened (offline here).", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.logSize, c.logStart, c.logEnd, c.hw, c.segments, c.offline, c.raftState, c.raftTerm, c.raftCommit,
		c.raftApply, c.raftMember, c.ready, c.members, c.rebalances, c.lag, c.openFiles, c.maxFiles, c.closed, c.failed} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.n.repl.Partitions() {
		l := p.Log()
		labels := []string{p.Topic, strconv.Itoa(int(p.Index))}
		ch <- prometheus.MustNewConstMetric(c.logSize, prometheus.GaugeValue, float64(l.Size()), labels...)
		ch <- prometheus.MustNewConstMetric(c.logStart, prometheus.GaugeValue, float64(l.LogStartOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(c.logEnd, prometheus.GaugeValue, float64(l.LogEndOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(c.hw, prometheus.GaugeValue, float64(p.HighWatermark()), labels...)
		ch <- prometheus.MustNewConstMetric(c.segments, prometheus.GaugeValue, float64(l.SegmentCount()), labels...)
		offline := 0.0
		if p.Offline() != nil {
			offline = 1
		}
		ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, offline, labels...)
	}
	files := c.n.logs.Files()
	ch <- prometheus.MustNewConstMetric(c.openFiles, prometheus.GaugeValue, float64(files.Open()))
	ch <- prometheus.MustNewConstMetric(c.maxFiles, prometheus.GaugeValue, float64(max(files.Max(), 0)))
	ch <- prometheus.MustNewConstMetric(c.closed, prometheus.CounterValue, float64(files.Closed()))
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, float64(len(c.n.repl.FailedToOpen())))
	st := c.n.meta.Stats()
	for _, s := range []string{"Follower", "Candidate", "Leader", "Shutdown"} {
		v := 0.0
		if st.State == s {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.raftState, prometheus.GaugeValue, v, s)
	}
	ch <- prometheus.MustNewConstMetric(c.raftTerm, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(c.raftCommit, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(c.raftApply, prometheus.GaugeValue, float64(st.AppliedIndex))
	for _, m := range c.n.meta.Image().Members {
		suffrage := "nonvoter"
		if m.Voter {
			suffrage = "voter"
		}
		ch <- prometheus.MustNewConstMetric(c.raftMember, prometheus.GaugeValue, 1, strconv.Itoa(int(m.ID)), m.RaftAddr, suffrage)
	}
	ready := 0.0
	if c.n.Ready() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready)
	if c.n.coord == nil {
		return
	}
	for _, g := range c.n.coord.Stats() {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(g.Members), g.Group)
		ch <- prometheus.MustNewConstMetric(c.rebalances, prometheus.CounterValue, float64(g.Rebalances), g.Group)
		for tp, lag := range g.Lag {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(lag), g.Group, tp.Topic, strconv.Itoa(int(tp.Partition)))
		}
	}
}

// newCommitLatency is the histogram of durable group commits.
func newCommitLatency(reg prometheus.Registerer) func(time.Duration) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "weir_group_commit_duration_seconds", Help: "Time to make a group's offset commit durable (acks=all).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
	})
	reg.MustRegister(h)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}
