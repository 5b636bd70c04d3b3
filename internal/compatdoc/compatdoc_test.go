package compatdoc

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	doc := "# title\n\n| upstream | kind | status | source | here |\n|---|---|---|---|---|\n" +
		"| `run --keep/-k` | bool | same | 0.4.0 | |\n" +
		"| `GET /sandboxes/{name}` | route | same | npm 0.18.1 | |\n" +
		"| `replay` | cmd | not offered | 0.4.0 | nothing is recorded |\n" +
		"prose with a `code span` | not a row\n"
	rows, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("rows: %+v", rows)
	}
	f, err := rows[0].Flag()
	if err != nil || f != (Flag{Command: "run", Long: "keep", Short: "k"}) {
		t.Fatalf("flag: %+v %v", f, err)
	}
	if rt, err := rows[1].Route(); err != nil || rt.Method != "GET" || rt.Path != "/sandboxes/{name}" || rt.Status != 0 {
		t.Fatalf("route: %+v %v", rt, err)
	}
	rt, err := (Row{Key: "POST /sandboxes {name,image} -> 201 {name,status}"}).Route()
	if err != nil || rt.Method != "POST" || rt.Status != 201 || strings.Join(rt.Req, " ") != "name image" ||
		strings.Join(rt.Resp, " ") != "name status" {
		t.Fatalf("route: %+v %v", rt, err)
	}
	if rows[2].Line != 7 || rows[2].Notes != "nothing is recorded" {
		t.Fatalf("row: %+v", rows[2])
	}
	if got := Select(rows, StatusSame, KindBool, KindValue); len(got) != 1 || got[0].Key != "run --keep/-k" {
		t.Fatalf("select: %+v", got)
	}
}

func TestParseRefuses(t *testing.T) {
	for doc, want := range map[string]string{
		"| `run` | command | same | 0.4.0 | |\n":                              "unknown kind",
		"| `run` | cmd | samey | 0.4.0 | |\n":                                 "unknown status",
		"| `run` | cmd | different | 0.4.0 | |\n":                             "must say how or why",
		"| `run` | cmd | same | | |\n":                                        "no upstream source",
		"| `run` | cmd | same | 0.4.0 | |\n| `run` | cmd | same | docs | |\n": "already on line 1",
	} {
		if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
	for _, key := range []string{"GET", "get /x", "GET /x 200", "GET /x -> 42", "GET /x {a} -> 200 {b} c"} {
		if _, err := (Row{Key: key}).Route(); err == nil {
			t.Errorf("Route(%q) accepted", key)
		}
	}
	for _, key := range []string{"run", "run --k/-kk", "run -k"} {
		if _, err := (Row{Key: key}).Flag(); err == nil {
			t.Errorf("Flag(%q) accepted", key)
		}
	}
}
