package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// decodeJSONObject parses a JSON object, keeping numbers as written. Empty
// (or blank) content is an empty object.
func decodeJSONObject(name string, content []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(content)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON (%v); fix or move it first", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s is not valid JSON (data after the top-level value); fix or move it first", name)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not a JSON object; fix or move it first", name)
	}
	return m, nil
}

// encodeJSON writes v with a 2-space indent and a final newline, without
// HTML escaping.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// normalize turns v into what decodeJSONObject would produce for it.
func normalize(v any) any {
	b, _ := json.Marshal(v)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	_ = dec.Decode(&out)
	return out
}

// matches reports whether have holds every key of want with an equal value
// (keys the user added, such as env, do not make an entry differ).
func matches(have, want any) bool {
	hm, ok1 := have.(map[string]any)
	wm, ok2 := want.(map[string]any)
	if !ok1 || !ok2 {
		return reflect.DeepEqual(have, want)
	}
	for k, wv := range wm {
		hv, ok := hm[k]
		if !ok || !reflect.DeepEqual(hv, wv) {
			return false
		}
	}
	return true
}

// lookupJSON returns the parent object of path's last key (nil when a
// parent is missing) and the value there.
func lookupJSON(name string, root map[string]any, path []string, create bool) (map[string]any, any, error) {
	m := root
	for i, k := range path[:len(path)-1] {
		v, ok := m[k]
		if !ok {
			if !create {
				return nil, nil, nil
			}
			n := map[string]any{}
			m[k] = n
			m = n
			continue
		}
		n, ok := v.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("%s: %s is not a JSON object; fix it first", name, strings.Join(path[:i+1], "."))
		}
		m = n
	}
	v, ok := m[path[len(path)-1]]
	if !ok {
		return m, nil, nil
	}
	return m, v, nil
}

// InstallJSON sets the object at path (such as mcpServers.agentkernel) in
// a JSON document to entry, keeping everything else. name is the file's
// name, for errors. An entry that already matches leaves content as is
// (StatusUnchanged); a differing one needs force.
func InstallJSON(name string, content []byte, path []string, entry any, force bool) ([]byte, Status, error) {
	root, err := decodeJSONObject(name, content)
	if err != nil {
		return nil, 0, err
	}
	want := normalize(entry)
	parent, have, err := lookupJSON(name, root, path, true)
	if err != nil {
		return nil, 0, err
	}
	status := StatusCreated
	if len(bytes.TrimSpace(content)) > 0 {
		status = StatusUpdated
	}
	if have != nil {
		if matches(have, want) {
			return content, StatusUnchanged, nil
		}
		if !force {
			return nil, 0, &DiffersError{File: name, Key: strings.Join(path, ".")}
		}
	}
	parent[path[len(path)-1]] = want
	out, err := encodeJSON(root)
	if err != nil {
		return nil, 0, err
	}
	return out, status, nil
}

// UninstallJSON removes the key at path, keeping everything else
// (StatusUnchanged with content as is when it is absent).
func UninstallJSON(name string, content []byte, path []string) ([]byte, Status, error) {
	root, err := decodeJSONObject(name, content)
	if err != nil {
		return nil, 0, err
	}
	parent, have, err := lookupJSON(name, root, path, false)
	if err != nil {
		return nil, 0, err
	}
	if have == nil {
		return content, StatusUnchanged, nil
	}
	delete(parent, path[len(path)-1])
	out, err := encodeJSON(root)
	if err != nil {
		return nil, 0, err
	}
	return out, StatusUpdated, nil
}

// InspectJSON reports whether the entry at path is present and whether it
// matches entry.
func InspectJSON(name string, content []byte, path []string, entry any) (present, same bool, err error) {
	root, err := decodeJSONObject(name, content)
	if err != nil {
		return false, false, err
	}
	_, have, err := lookupJSON(name, root, path, false)
	if err != nil || have == nil {
		return false, false, err
	}
	return true, matches(have, normalize(entry)), nil
}
