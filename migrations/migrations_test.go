package migrations

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// sums reads sums.txt: "<sha256>  <file>" per migration, in order.
func sums(t *testing.T, text []byte) [][2]string {
	t.Helper()
	var out [][2]string
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("sums.txt: malformed line %q", sc.Text())
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out
}

// A committed migration is never edited: databases that ran it will never run it again, so an edit
// silently forks the schema. sums.txt holds every migration's SHA-256; a migration that no longer
// matches its line fails here. A change to the schema is a new migration (and a new line).
func TestMigrationsMatchTheirSums(t *testing.T) {
	raw, err := os.ReadFile("sums.txt")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, s := range sums(t, raw) {
		body, err := fs.ReadFile(FS, s[1])
		if err != nil {
			t.Fatalf("sums.txt lists %s, which does not exist: a committed migration is never removed", s[1])
		}
		sum := sha256.Sum256(body)
		if got := hex.EncodeToString(sum[:]); got != s[0] {
			t.Errorf("%s was edited after it was committed (sha256 %s, sums.txt %s): put the change in a new migration", s[1], got, s[0])
		}
		listed[s[1]] = true
	}
	names, _ := fs.Glob(FS, "*.sql")
	for _, n := range names {
		if !listed[n] {
			t.Errorf("%s is not in sums.txt: add `sha256sum %s` to it in the commit that adds the migration", n, n)
		}
	}
}

// And sums.txt itself only grows: no committed line is ever changed or removed, in any commit of the
// history. (Changing a migration and its line together would otherwise pass the test above.)
func TestSumsOnlyGrow(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to read sums.txt's history")
	}
	// A shallow clone cuts the history this reads: it would compare sums.txt with itself and pass.
	if out, err := exec.Command("git", "rev-parse", "--is-shallow-repository").Output(); err != nil || strings.TrimSpace(string(out)) != "false" {
		t.Fatalf("sums.txt's history cannot be read here (shallow clone: git fetch --unshallow): %q %v", out, err)
	}
	out, err := exec.Command("git", "log", "--format=%H", "--", "sums.txt").Output()
	if err != nil {
		t.Fatalf("git log: %v (run the tests in a git checkout)", err)
	}
	commits := strings.Fields(string(out)) // newest first
	current, err := os.ReadFile("sums.txt")
	if err != nil {
		t.Fatal(err)
	}
	later := sums(t, current)
	for _, c := range commits {
		text, err := exec.Command("git", "show", c+":./sums.txt").Output()
		if err != nil {
			t.Fatalf("git show %s: %v", c, err)
		}
		earlier := sums(t, text)
		if len(earlier) > len(later) {
			t.Fatalf("commit %s had %d lines in sums.txt, a later version %d: lines were removed", c[:12], len(earlier), len(later))
		}
		for i := range earlier {
			if earlier[i] != later[i] {
				t.Fatalf("line %d of sums.txt (%s) changed after commit %s: a committed migration was edited", i+1, earlier[i][1], c[:12])
			}
		}
		later = earlier
	}
}
