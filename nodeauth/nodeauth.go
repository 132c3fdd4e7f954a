package nodeauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Header carries the HTTP token on node-to-node requests.
const Header = "Weir-Cluster-Auth"

// SecretFile is the secret's file in a node's data dir, read when the
// configuration does not give the secret.
const SecretFile = "cluster-secret"

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 16

// Labels of the derived tokens: one per use, so that no token stands in for
// another.
const (
	labelHTTP       = "weir node-to-node http v1"
	labelRaftDial   = "weir raft dial v1"
	labelRaftAccept = "weir raft accept v1"
)

// Keys are the credentials derived from a cluster secret.
type Keys struct {
	http       string // hex, as the header carries it
	raftDial   []byte // what a dialing node sends
	raftAccept []byte // what the accepting node answers
}

// NewKeys derives the credentials from secret (surrounding white space is
// ignored, as a file's trailing newline would be).
func NewKeys(secret string) (*Keys, error) {
	secret = strings.TrimSpace(secret)
	if err := CheckSecret(secret); err != nil {
		return nil, err
	}
	return &Keys{
		http:       hex.EncodeToString(derive(secret, labelHTTP)),
		raftDial:   derive(secret, labelRaftDial),
		raftAccept: derive(secret, labelRaftAccept),
	}, nil
}

// CheckSecret says what is wrong with a secret, without repeating it.
func CheckSecret(secret string) error {
	if n := len(strings.TrimSpace(secret)); n < MinSecretLen {
		return fmt.Errorf("is %d bytes long; use at least %d (e.g. the output of `openssl rand -hex 32`)", n, MinSecretLen)
	}
	return nil
}

func derive(secret, label string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(label))
	return m.Sum(nil)
}

// HTTPToken is the value of Header on this node's requests.
func (k *Keys) HTTPToken() string { return k.http }

// ValidHTTP reports whether a presented header value is the cluster's token.
func (k *Keys) ValidHTTP(presented string) bool {
	return subtle.ConstantTimeCompare([]byte(presented), []byte(k.http)) == 1
}

// Transport adds this node's token to every request sent through base.
func (k *Keys) Transport(base http.RoundTripper) http.RoundTripper {
	return &authTransport{base: base, token: k.http}
}

type authTransport struct {
	base  http.RoundTripper
	token string
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not change the caller's request.
	out := req.Clone(req.Context())
	out.Header.Set(Header, t.token)
	return t.base.RoundTrip(out)
}

// CloseIdleConnections passes on to the wrapped transport (http.Client
// calls it through this interface).
func (t *authTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Generate returns a new random secret: 32 bytes from crypto/rand, in hex.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a cluster secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// LoadOrCreate reads the secret file at path. When there is none and
// mayCreate allows it (nil allows always), it generates a secret and creates
// the file with it (see createFile: its owner's only, whole or not at all,
// never replacing one); created then says so. mayCreate's error is returned
// as it is, and no file is made.
func LoadOrCreate(path string, mayCreate func() error) (secret string, created bool, err error) {
	secret, ok, err := readFile(path)
	if err != nil || ok {
		return secret, false, err
	}
	if mayCreate != nil {
		if err := mayCreate(); err != nil {
			return "", false, err
		}
	}
	if secret, err = Generate(); err != nil {
		return "", false, err
	}
	if err := createFile(path, secret); err != nil {
		return "", false, err
	}
	return secret, true, nil
}

// readFile reads a secret file; ok is false when it does not exist.
func readFile(path string) (secret string, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the cluster secret: %w", err)
	}
	secret = strings.TrimSpace(string(b))
	if err := CheckSecret(secret); err != nil {
		return "", false, fmt.Errorf("the cluster secret in %s %w", path, err)
	}
	return secret, true, nil
}

// createFile writes secret to a new file readable by its owner only; it
// fails if the file exists (another process may have written one).
func createFile(path, secret string) error {
	// CreateTemp makes the file 0600: the secret is never readable by others.
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write the cluster secret: %w", err)
	}
	_, werr := tmp.WriteString(secret + "\n")
	err = errors.Join(werr, tmp.Sync(), tmp.Close())
	if err == nil {
		// A hard link publishes the whole file at once and refuses to replace one.
		err = os.Link(tmp.Name(), path)
	}
	// The temporary name goes either way (the link, if made, stays).
	if err := errors.Join(err, os.Remove(tmp.Name())); err != nil {
		return fmt.Errorf("write the cluster secret: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }() // opened only to sync it
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
