package errcode_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"weir/errcode"
)

// kafkaNames are the catalog names that differ from Kafka's own.
var kafkaNames = map[string]string{
	errcode.InvalidTopic: "INVALID_TOPIC_EXCEPTION",
	// Kafka 2.7 renamed it; franz-go keeps the older name.
	errcode.NotLeaderOrFollower: "NOT_LEADER_FOR_PARTITION",
}

// retriableDiffers are the errors whose retriability deliberately differs
// from Kafka's, with why.
var retriableDiffers = map[string]string{
	// Kafka's clients retry it while metadata propagates; a REST node answers
	// it only after it has caught up with the metadata (503 before), so the
	// topic really is missing.
	errcode.UnknownTopicOrPartition: "a node answers it only once its metadata is current",
	// Kafka marks it retriable for a broker that is restarting; over REST it
	// answers DELETE /v1/brokers/{id} for an id that was never registered.
	errcode.BrokerNotAvailable: "REST answers it for an unknown broker id",
	// Kafka's clients retry it after refreshing metadata; the REST API has no
	// metadata cache to refresh, and the caller must change its request.
	errcode.StaleBrokerEpoch: "the sender must re-register",
}

// TestCatalogMatchesKafka walks the catalog: every entry has a unique name
// and code, a status of the right class, a description, and the Kafka code,
// name and retriability Kafka itself gives that code.
func TestCatalogMatchesKafka(t *testing.T) {
	names, codes := map[string]bool{}, map[int16]string{}
	for _, c := range errcode.All() {
		if names[c.Name] {
			t.Errorf("%s is listed twice", c.Name)
		}
		names[c.Name] = true
		if c.Description == "" {
			t.Errorf("%s has no description", c.Name)
		}
		if c.HTTPStatus < 400 || c.HTTPStatus > 599 || http.StatusText(c.HTTPStatus) == "" {
			t.Errorf("%s: HTTP status %d is not an error status", c.Name, c.HTTPStatus)
		}
		if c.Retriable && c.HTTPStatus < 500 && c.HTTPStatus != http.StatusConflict {
			t.Errorf("%s is retriable but travels as %d: a client would not retry a plain 4xx", c.Name, c.HTTPStatus)
		}
		if c.HTTPStatus == http.StatusServiceUnavailable && !c.Retriable {
			t.Errorf("%s travels as 503 but is not retriable", c.Name)
		}
		if c.Kafka == errcode.NoKafkaCode {
			continue
		}
		if prev, dup := codes[c.Kafka]; dup {
			t.Errorf("Kafka code %d is both %s and %s", c.Kafka, prev, c.Name)
		}
		codes[c.Kafka] = c.Name
		ke := kerr.ErrorForCode(c.Kafka)
		var k *kerr.Error
		if !errors.As(ke, &k) {
			t.Errorf("%s: Kafka has no error code %d", c.Name, c.Kafka)
			continue
		}
		want := c.Name
		if n, ok := kafkaNames[c.Name]; ok {
			want = n
		}
		if k.Message != want {
			t.Errorf("%s: Kafka code %d is %s", c.Name, c.Kafka, k.Message)
		}
		if _, ok := retriableDiffers[c.Name]; !ok && k.Retriable != c.Retriable {
			t.Errorf("%s: retriable=%v, Kafka says %v", c.Name, c.Retriable, k.Retriable)
		}
	}
	for name := range retriableDiffers {
		if !names[name] {
			t.Errorf("retriableDiffers names %s, which is not in the catalog", name)
		}
	}
}

// TestEveryNameIsCatalogued checks that each name constant of the package
// has its catalog entry, so Get never falls back for a declared name.
func TestEveryNameIsCatalogued(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errcode.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for _, v := range s.(*ast.ValueSpec).Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				name, _ := strconv.Unquote(lit.Value)
				n++
				if _, ok := errcode.Lookup(name); !ok {
					t.Errorf("%s is declared but not in the catalog", name)
				}
			}
		}
	}
	if n != len(errcode.All()) {
		t.Errorf("%d names declared, %d catalogued", n, len(errcode.All()))
	}
}

func TestSentinels(t *testing.T) {
	sentinel := errcode.New(errcode.UnknownMemberID, "")
	err := fmt.Errorf("%w: member m left", sentinel)
	if name, ok := errcode.NameOf(err); !ok || name != errcode.UnknownMemberID {
		t.Fatalf("NameOf = %q, %v", name, ok)
	}
	if err.Error() != "UNKNOWN_MEMBER_ID: member m left" {
		t.Fatalf("message %q", err.Error())
	}
	if !errors.Is(err, sentinel) || errcode.Get(sentinel.Code).Retriable {
		t.Fatal("wrong identity or retriability")
	}
	if _, ok := errcode.NameOf(errors.New("plain")); ok {
		t.Fatal("a plain error has no code")
	}
	if c := errcode.Get("NO_SUCH_ERROR"); c.HTTPStatus != http.StatusInternalServerError || c.Name != "NO_SUCH_ERROR" {
		t.Fatalf("Get of an unknown name: %+v", c)
	}
}
