package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// str agrees with encoding/json on what a string is, wherever in an 8-byte
// word the quote, the escape or the control character falls.
func TestStrAgreesWithEncodingJSON(t *testing.T) {
	for _, mid := range []string{``, `\"`, `\\`, `\n`, `\u00e9`, "\x01", "\x1f", `\x`, `\u12`, `"`, "\xff", ` `} {
		for pad := range 18 {
			for _, tail := range []string{`"`, ``, `\`} {
				s := `"` + strings.Repeat("a", pad) + mid + strings.Repeat("b", pad%5) + tail
				r := &jsonReader{data: []byte(s)}
				raw, _, err := r.str()
				whole := err == nil && r.atEnd()
				if valid := json.Valid([]byte(s)); whole != valid {
					t.Errorf("%q: str read it whole: %v (%v), encoding/json: valid %v", s, whole, err, valid)
				}
				if whole && string(raw) != s[1:len(s)-1] {
					t.Errorf("%q: raw %q", s, raw)
				}
				naive := bytes.IndexFunc([]byte(s), func(c rune) bool { return c < 0x20 })
				if i := firstControl([]byte(s)); i != naive {
					t.Errorf("%q: firstControl %d, want %d", s, i, naive)
				}
			}
		}
	}
}
