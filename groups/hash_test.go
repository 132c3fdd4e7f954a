package groups

import "testing"

func TestJavaStringHashCode(t *testing.T) {
	// Expected values computed independently (Python over UTF-16BE code
	// units with 32-bit wrap), and "hello" is the textbook Java value.
	tests := []struct {
		s    string
		want int32
	}{
		{"", 0},
		{"a", 97},
		{"hello", 99162322},
		{"test-consumer-group", -1793216381},
		{"my-group", -1906497762},
		{"grüppe", -1233264812},
		{"消费组", 28099635},
		{"😀", 1772899}, // surrogate pair D83D DE00
		{"polygenelubricants", -2147483648},
		{"orders-consumers", 1307682389},
	}
	for _, tt := range tests {
		if got := javaStringHashCode(tt.s); got != tt.want {
			t.Errorf("hashCode(%q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}

func TestOffsetsPartition(t *testing.T) {
	tests := []struct {
		group string
		n     int
		want  int32
	}{
		{"", 16, 0},
		{"a", 16, 1},
		{"a", 50, 47},
		{"hello", 16, 2},
		// Negative hash: Utils.abs is Math.abs, so 1793216381 % 16 = 13.
		// (n & 0x7fffffff would give 3: a different coordinator.)
		{"test-consumer-group", 16, 13},
		{"test-consumer-group", 50, 31},
		{"my-group", 16, 2},
		{"grüppe", 16, 12},
		{"消费组", 50, 35},
		{"😀", 50, 49},
		// hashCode == Integer.MIN_VALUE: Utils.abs maps it to 0.
		{"polygenelubricants", 16, 0},
		{"polygenelubricants", 7, 0},
		{"orders-consumers", 16, 5},
		{"x", 1, 0},
		{"x", 0, 0},  // misconfiguration: no panic
		{"x", -3, 0}, // likewise
	}
	for _, tt := range tests {
		if got := OffsetsPartition(tt.group, tt.n); got != tt.want {
			t.Errorf("OffsetsPartition(%q, %d) = %d, want %d", tt.group, tt.n, got, tt.want)
		}
	}
	for i := range 1000 {
		g := string(rune('a'+i%26)) + string(rune(0x4e00+i))
		if p := OffsetsPartition(g, 16); p < 0 || p >= 16 {
			t.Fatalf("OffsetsPartition(%q) = %d out of range", g, p)
		}
	}
}
