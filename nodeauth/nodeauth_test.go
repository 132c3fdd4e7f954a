package nodeauth

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustKeys(t *testing.T, secret string) *Keys {
	t.Helper()
	k, err := NewKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeys(t *testing.T) {
	const secret = "0123456789abcdef-the-secret"
	if _, err := NewKeys("too-short"); err == nil || strings.Contains(err.Error(), "too-short") {
		t.Fatalf("a short secret: %v (must be refused without repeating it)", err)
	}
	k := mustKeys(t, secret)
	if k2 := mustKeys(t, "  "+secret+"\n"); k2.HTTPToken() != k.HTTPToken() {
		t.Fatal("white space around the secret changed the token")
	}
	if strings.Contains(k.HTTPToken(), secret) || len(k.HTTPToken()) != 64 {
		t.Fatalf("the HTTP token %q is not a derived 32-byte hex value", k.HTTPToken())
	}
	other := mustKeys(t, secret+"x")
	if !k.ValidHTTP(k.HTTPToken()) || k.ValidHTTP(other.HTTPToken()) || k.ValidHTTP("") || k.ValidHTTP(secret) {
		t.Fatal("ValidHTTP takes only the cluster's own token")
	}
	if bytes.Equal(k.raftDial, k.raftAccept) || bytes.Equal(k.raftDial, []byte(k.http)) {
		t.Fatal("the tokens of different uses are equal")
	}
}

func TestTransportAddsTheToken(t *testing.T) {
	k := mustKeys(t, "0123456789abcdef-the-secret")
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get(Header) }))
	defer srv.Close()
	hc := &http.Client{Transport: k.Transport(http.DefaultTransport)}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != k.HTTPToken() {
		t.Fatalf("the server saw %q", got)
	}
	if req.Header.Get(Header) != "" {
		t.Fatal("the transport changed the caller's request")
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SecretFile)
	if _, ok, err := readFile(path); ok || err != nil {
		t.Fatalf("a missing file: ok %v, err %v", ok, err)
	}
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || len(a) != 64 {
		t.Fatalf("generated %q and %q", a, b)
	}
	if err := createFile(path, a); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("the secret file has mode %v, want 0600", st.Mode().Perm())
	}
	if got, ok, err := readFile(path); err != nil || !ok || got != a {
		t.Fatalf("read back %q, %v, %v", got, ok, err)
	}
	if err := createFile(path, b); err == nil {
		t.Fatal("a second createFile replaced the secret")
	}
	if got, _, _ := readFile(path); got != a {
		t.Fatal("the secret changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("leftovers in the directory: %v", entries)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readFile(short); err == nil || strings.Contains(err.Error(), "abc") {
		t.Fatalf("a short secret in a file: %v", err)
	}
}

// TestLoadOrCreate: the first call makes the file (mode 0600), later ones
// read it; a refusal of mayCreate comes back as it is and makes nothing; a
// bad file is an error, not replaced.
func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SecretFile)
	no := errors.New("not this node")
	if _, created, err := LoadOrCreate(path, func() error { return no }); !errors.Is(err, no) || created {
		t.Fatalf("refused: created %v, err %v", created, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused create made the file (%v)", err)
	}
	first, created, err := LoadOrCreate(path, nil)
	if err != nil || !created || CheckSecret(first) != nil {
		t.Fatalf("first: %q, created %v, err %v", first, created, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the secret file: %v, %v", st, err)
	}
	asked := false
	again, created, err := LoadOrCreate(path, func() error { asked = true; return nil })
	if err != nil || created || again != first || asked {
		t.Fatalf("second: %q (first %q), created %v, asked %v, err %v", again, first, created, asked, err)
	}
	if err := os.WriteFile(path, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreate(path, nil); err == nil || created {
		t.Fatalf("a short secret in the file: created %v, err %v", created, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "abc\n" {
		t.Fatalf("a bad secret file was replaced: %q", b)
	}
}

// TestAcceptedConnRefusesWithoutHandshake: a stream that does not open with
// the handshake, or opens with another cluster's, reads as EOF, is closed
// and reported; a good one passes through.
func TestAcceptedConnRefusesWithoutHandshake(t *testing.T) {
	k := mustKeys(t, "0123456789abcdef-the-secret")
	other := mustKeys(t, "0123456789abcdef-another-one")
	for _, tc := range []struct {
		name  string
		hello []byte
	}{
		{"raw raft", []byte{0, 0x83, 0xa1, 'x', 0, 0, 0, 0, 0}},
		{"another cluster", append(append([]byte{}, handshakeMagic...), other.raftDial...)},
		{"short", handshakeMagic[:3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			var refusal error
			conn := k.AcceptedConn(server, time.Second, func(_ net.Addr, err error) { refusal = err })
			// A short hello is followed by silence: the deadline ends it.
			go func() { _, _ = client.Write(tc.hello) }()
			if n, err := conn.Read(make([]byte, 16)); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("read %d, %v; want EOF", n, err)
			}
			if refusal == nil {
				t.Fatal("the refusal was not reported")
			}
			if _, err := conn.Write([]byte("x")); err == nil {
				t.Fatal("a refused connection took a write")
			}
		})
	}
	client, server := net.Pipe()
	defer client.Close()
	conn := k.AcceptedConn(server, time.Second, func(_ net.Addr, err error) { t.Errorf("refused: %v", err) })
	done := make(chan error, 1)
	go func() {
		if err := k.DialHandshake(client, time.Second); err != nil {
			done <- err
			return
		}
		_, err := client.Write([]byte("hello"))
		done <- err
	}()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("after a good handshake: %q, %v", buf, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRefusalLogIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	l := NewRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)), "refused", time.Hour)
	for range 100 {
		l.Refused("127.0.0.1:1", "no credential")
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("%d log lines for 100 refusals within the interval:\n%s", n, buf.String())
	}
	l.last = l.last.Add(-2 * time.Hour) // the interval has passed
	l.Refused("127.0.0.1:1", "no credential")
	if !strings.Contains(buf.String(), "refused_since_last_log=99") {
		t.Fatalf("the next line does not count the 99 suppressed:\n%s", buf.String())
	}
}
