package hubtest

import "testing"

// The git object ids come from `git hash-object`.
func TestGitBlobSHA1(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"", "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"},
		{"hello\n", "ce013625030ba8dba906f756967f9e9ca394464a"},
	} {
		if got := GitBlobSHA1([]byte(tc.data)); got != tc.want {
			t.Errorf("GitBlobSHA1(%q) = %s, want %s", tc.data, got, tc.want)
		}
	}
}

// The sha256 values come from `sha256sum`.
func TestSHA256(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"hello\n", "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"},
	} {
		if got := SHA256([]byte(tc.data)); got != tc.want {
			t.Errorf("SHA256(%q) = %s, want %s", tc.data, got, tc.want)
		}
	}
}
