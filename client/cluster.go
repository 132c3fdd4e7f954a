package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Cluster returns GET /v1/cluster: the cluster id, controller and brokers.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var out Cluster
	if err := c.get(ctx, v1("cluster"), nil, &out); err != nil {
		return nil, fmt.Errorf("get cluster: %w", err)
	}
	return &out, nil
}

// Brokers returns GET /v1/brokers.
func (c *Client) Brokers(ctx context.Context) ([]Broker, error) {
	var out BrokerList
	if err := c.get(ctx, v1("brokers"), nil, &out); err != nil {
		return nil, fmt.Errorf("list brokers: %w", err)
	}
	return out.Brokers, nil
}

// Broker returns GET /v1/brokers/{id}.
func (c *Client) Broker(ctx context.Context, id int32) (*Broker, error) {
	var out Broker
	if err := c.get(ctx, v1("brokers", strconv.Itoa(int(id))), nil, &out); err != nil {
		return nil, fmt.Errorf("get broker %d: %w", id, err)
	}
	return &out, nil
}

// DeleteBroker removes a node that is gone for good (DELETE /v1/brokers/{id}).
func (c *Client) DeleteBroker(ctx context.Context, id int32) error {
	if _, err := c.send(ctx, http.MethodDelete, v1("brokers", strconv.Itoa(int(id))), nil, nil); err != nil {
		return fmt.Errorf("delete broker %d: %w", id, err)
	}
	return nil
}

// Health returns GET /v1/health. An unhealthy cluster is a Health with
// Healthy false, not an error, even when the server replies 503.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var out Health
	err := c.get(ctx, v1("health"), nil, &out)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == "" {
		out = Health{}
		if decodeHealth(apiErr.Body, &out) {
			return &out, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("get health: %w", err)
	}
	return &out, nil
}

// decodeHealth reports whether raw is a Health body (it has "healthy").
func decodeHealth(raw []byte, h *Health) bool {
	var probe struct {
		Healthy *bool `json:"healthy"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.Healthy == nil {
		return false
	}
	return json.Unmarshal(raw, h) == nil
}

// Livez reports whether the first reachable server is alive (GET /livez).
func (c *Client) Livez(ctx context.Context) (bool, error) { return c.probe(ctx, "/livez") }

// Readyz reports whether the first reachable server is ready: joined,
// metadata caught up and a controller known (GET /readyz).
func (c *Client) Readyz(ctx context.Context) (bool, error) { return c.probe(ctx, "/readyz") }

func (c *Client) probe(ctx context.Context, path string) (bool, error) {
	resp, err := c.do(ctx, &call{method: http.MethodGet, path: path, read: true, noRetry: true})
	if err == nil {
		discardBody(resp)
		return true, nil
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable {
		return false, nil
	}
	return false, fmt.Errorf("GET %s: %w", path, err)
}
