package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// ListTopics returns GET /v1/topics; internal includes internal topics such
// as __consumer_offsets.
func (c *Client) ListTopics(ctx context.Context, internal bool) ([]TopicSummary, error) {
	var q url.Values
	if internal {
		q = url.Values{"internal": {"true"}}
	}
	var out TopicList
	if err := c.get(ctx, v1("topics"), q, &out); err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	return out.Topics, nil
}

// CreateTopic creates a topic (POST /v1/topics) and returns it as the server
// shows it. Nil fields of req take the broker defaults.
func (c *Client) CreateTopic(ctx context.Context, req CreateTopicRequest) (*Topic, error) {
	var out Topic
	if _, err := c.send(ctx, http.MethodPost, v1("topics"), req, &out); err != nil {
		return nil, fmt.Errorf("create topic %q: %w", req.Name, err)
	}
	return &out, nil
}

// Topic returns GET /v1/topics/{t}: configs and partitions.
func (c *Client) Topic(ctx context.Context, topic string) (*Topic, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	var out Topic
	if err := c.get(ctx, v1("topics", topic), nil, &out); err != nil {
		return nil, fmt.Errorf("get topic %q: %w", topic, err)
	}
	return &out, nil
}

// AlterTopic raises the partition count and/or sets configs (a nil value
// resets one to its default) with PATCH /v1/topics/{t}. It returns the topic
// as the reply shows it, or nil when the reply has no body.
func (c *Client) AlterTopic(ctx context.Context, topic string, req AlterTopicRequest) (*Topic, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	var out Topic
	present, err := c.send(ctx, http.MethodPatch, v1("topics", topic), req, &out)
	if err != nil {
		return nil, fmt.Errorf("alter topic %q: %w", topic, err)
	}
	if !present {
		return nil, nil
	}
	return &out, nil
}

// DeleteTopic deletes a topic and its data (DELETE /v1/topics/{t}).
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	if _, err := c.send(ctx, http.MethodDelete, v1("topics", topic), nil, nil); err != nil {
		return fmt.Errorf("delete topic %q: %w", topic, err)
	}
	return nil
}

// TopicOffsets returns each partition's log start, high watermark and log end
// (GET /v1/topics/{t}/offsets); with a timestamp (ms), also the first offset
// whose timestamp is at or after it.
func (c *Client) TopicOffsets(ctx context.Context, topic string, timestamp *int64) (*TopicOffsets, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	var q url.Values
	if timestamp != nil {
		q = url.Values{"timestamp": {strconv.FormatInt(*timestamp, 10)}}
	}
	var out TopicOffsets
	if err := c.get(ctx, v1("topics", topic, "offsets"), q, &out); err != nil {
		return nil, fmt.Errorf("get offsets of topic %q: %w", topic, err)
	}
	return &out, nil
}

func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("weir client: empty topic name")
	}
	return nil
}
