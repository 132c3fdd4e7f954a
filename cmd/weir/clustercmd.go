package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"weir/client"
)

func newClusterCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster: controller, brokers and health",
		Example: `  weir cluster status
  weir cluster brokers
  weir cluster status -o json | jq .health.healthy`,
		Args: cobra.ArbitraryArgs,
		RunE: helpOrUnknown,
	}
	cmd.AddCommand(newClusterStatusCmd(a), newClusterBrokersCmd(a))
	return cmd
}

// clusterStatus is the -o json/yaml of cluster status: the two API replies.
type clusterStatus struct {
	Cluster *client.Cluster `json:"cluster"`
	Health  *client.Health  `json:"health"`
}

func newClusterStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster id, controller, brokers and a health summary",
		Long: `Show the cluster id, the controller, a health summary (brokers down,
leaderless, under-replicated and under-min-ISR partitions) and the brokers.
-o json prints {"cluster": GET /v1/cluster, "health": GET /v1/health}.
An unhealthy cluster is still exit 0; check "Healthy" (or .health.healthy).`,
		Example: `  weir cluster status
  weir cluster status --server http://node1:8082,http://node2:8082
  weir cluster status -o json | jq -e .health.healthy`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			cl, err := c.Cluster(ctx)
			if err != nil {
				return err
			}
			h, err := c.Health(ctx)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.printStructured(clusterStatus{cl, h})
			}
			w := a.stdout
			fmt.Fprintf(w, "Cluster ID: %s\nController: %s\nHealthy: %t\n", cl.ClusterID, brokerID(cl.ControllerID), h.Healthy)
			for _, r := range h.Reasons {
				fmt.Fprintf(w, "  reason: %s\n", r)
			}
			fmt.Fprintf(w, "Brokers: %d (%s down)\n", len(cl.Brokers), joinIDs(h.BrokersDown))
			fmt.Fprintf(w, "Leaderless partitions: %s\n", partitionList(h.LeaderlessPartitions))
			fmt.Fprintf(w, "Under-replicated partitions: %s\n", partitionList(h.UnderReplicatedPartitions))
			fmt.Fprintf(w, "Under-min-ISR partitions: %s\n\n", partitionList(h.UnderMinISRPartitions))
			return printBrokers(a, cl.Brokers, cl.ControllerID)
		},
	}
}

func newClusterBrokersCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "brokers",
		Short: "List the brokers",
		Example: `  weir cluster brokers
  weir cluster brokers -o json | jq -r '.brokers[] | select(.state != "alive") | .id'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			bs, err := c.Brokers(ctx)
			if err != nil {
				return err
			}
			if bs == nil {
				bs = []client.Broker{}
			}
			if a.structured() {
				return a.printStructured(client.BrokerList{Brokers: bs})
			}
			return printBrokers(a, bs, -1)
		},
	}
}

func brokerID(id int32) string {
	if id < 0 {
		return "none"
	}
	return fmt.Sprint(id)
}

func partitionList(tps []client.TopicPartition) string {
	if len(tps) == 0 {
		return "0"
	}
	s := make([]string, len(tps))
	for i, tp := range tps {
		s[i] = fmt.Sprintf("%s-%d", tp.Topic, tp.Partition)
	}
	return fmt.Sprintf("%d (%s)", len(tps), strings.Join(s, ", "))
}

// printBrokers prints the broker table, marking the controller (when >= 0).
func printBrokers(a *app, bs []client.Broker, controller int32) error {
	t := newTable(a.stdout, "ID", "HTTP-ADDR", "RAFT-ADDR", "RACK", "STATE", "VOTER", "LEADERS", "EPOCH")
	for _, b := range bs {
		id := fmt.Sprint(b.ID)
		if controller >= 0 && b.ID == controller {
			id += "*"
		}
		rack := b.Rack
		if rack == "" {
			rack = "-"
		}
		t.row(id, b.HTTPAddr, b.RaftAddr, rack, b.State, b.Voter, b.LeaderCount, b.Epoch)
	}
	return t.flush()
}
