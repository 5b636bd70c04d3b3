package httpapi

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/compatdoc"
)

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// normPath makes path parameters comparable by position: upstream's
// {cmd_id} and {path} match our {id} and {path...}.
func normPath(p string) string { return pathParam.ReplaceAllString(p, "{}") }

// jsonFields adds the JSON field names of v's type (through pointers,
// slices, maps' values, embedded structs and alternatives) to set.
func jsonFields(v any, set map[string]bool) {
	if alts, ok := v.(alternatives); ok {
		for _, a := range alts {
			jsonFields(a, set)
		}
		return
	}
	if v != nil {
		addFields(reflect.TypeOf(v), set)
	}
}

func addFields(t reflect.Type, set map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			addFields(f.Type, set)
		case name != "":
			set[name] = true
		case f.IsExported():
			set[f.Name] = true
		}
	}
}

// TestCompatRoutes checks every route docs/COMPAT.md says upstream's
// clients may call against the route table that registers the mux.
func TestCompatRoutes(t *testing.T) {
	rows, err := compatdoc.Accepted(compatdoc.KindRoute)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		want, err := r.Route()
		if err != nil {
			t.Error(err)
			continue
		}
		var found *route
		var methods []string
		for i := range routes {
			if normPath(strings.TrimSuffix(routes[i].pattern, "/")) != normPath(want.Path) {
				continue
			}
			methods = append(methods, routes[i].method)
			if routes[i].method == want.Method || routes[i].method == "" {
				found = &routes[i]
			}
		}
		switch {
		case found == nil && methods == nil:
			t.Errorf("%s: no route for %s", r, want.Path)
			continue
		case found == nil:
			t.Errorf("%s: %s answers %v, not %s", r, want.Path, methods, want.Method)
			continue
		}
		if want.Status != 0 {
			status := found.status
			if status == 0 {
				status = http.StatusOK
			}
			if status != want.Status {
				t.Errorf("%s: answers %d, upstream %d", r, status, want.Status)
			}
		}
		req, resp := map[string]bool{}, map[string]bool{}
		jsonFields(found.req, req)
		jsonFields(found.resp, resp)
		for _, f := range want.Req {
			if !req[f] {
				t.Errorf("%s: the request body has no field %q", r, f)
			}
		}
		for _, f := range want.Resp {
			if !resp[f] {
				t.Errorf("%s: the answer has no field %q", r, f)
			}
		}
	}
}
