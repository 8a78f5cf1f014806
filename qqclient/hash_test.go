package qqclient

import "testing"

func TestHash(t *testing.T) {
	tests := []struct {
		uin     int64
		ptwebqq string
		want    string
	}{
		{931996776, "f7d6a4b8c2e1a9d3f5b7c0e2a4d6f8b1c3e5a7d9f0b2c4e6a8d0f1b3c5e7a9d2", "057204CE076B0023"},
		{2318067912, "abcdef0123456789", "00CF00695FA75983"},
	}
	for _, tt := range tests {
		if got := Hash(tt.uin, tt.ptwebqq); got != tt.want {
			t.Errorf("Hash(%d, %q) = %q, want %q", tt.uin, tt.ptwebqq, got, tt.want)
		}
	}
}

func TestHash33(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"8f9a2b7c", 1711877670},
		{"2d3a3c0b1cbe9b8c1e5f7c2f4b", 1443727868},
		{"", 0},
	}
	for _, tt := range tests {
		if got := Hash33(tt.in); got != tt.want {
			t.Errorf("Hash33(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
