package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// openAPIDocument builds the OpenAPI 3.1 document from the route table.
// Schemas come from the Go wire types by reflection, so the document
// follows pkg/api as it changes.
func openAPIDocument() []byte {
	g := &schemaGen{defs: map[string]any{}}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		p, params := openAPIPath(rt.pattern)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		if rt.method == "" {
			continue
		}
		paths[p][strings.ToLower(rt.method)] = g.operation(rt, params)
	}
	// Routes of every method take the methods no route of their own has.
	for _, rt := range routes {
		if rt.method != "" {
			continue
		}
		p, params := openAPIPath(rt.pattern)
		for _, m := range proxyMethods {
			if _, taken := paths[p][strings.ToLower(m)]; !taken {
				paths[p][strings.ToLower(m)] = proxyOperation(rt, params, m)
			}
		}
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "agentkernel API",
			"version": "1",
			"description": "Sandboxes for AI coding agents. Every JSON answer is an envelope " +
				`{"success":bool,"data":…,"error":"…","code":"…"}; "code" is the error class ` +
				"(invalid_argument, not_found, already_exists, failed_precondition, unavailable, " +
				"permission_denied, unauthenticated, too_large, not_implemented, deadline_exceeded, internal).",
		},
		"servers": []any{map[string]any{"url": "http://127.0.0.1:18888"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.defs,
			"responses": map[string]any{
				"Error": map[string]any{
					"description": "An error envelope",
					"content":     map[string]any{"application/json": map[string]any{"schema": envelopeSchema(nil)}},
				},
			},
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer"},
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key"},
				"basic":  map[string]any{"type": "http", "scheme": "basic", "description": "the token as the password, any user (basicAuth routes only)"},
			},
		},
		"security": []any{map[string]any{"bearer": []any{}}, map[string]any{"apiKey": []any{}}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("api: building the OpenAPI document: " + err.Error()) // a programming error in the route table
	}
	return b
}

// openAPIPath turns a mux pattern into an OpenAPI path and its path
// parameters: "/files/{path...}" becomes "/files/{path}".
func openAPIPath(pattern string) (string, []any) {
	var params []any
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		name := strings.TrimSuffix(strings.Trim(s, "{}"), "...")
		segs[i] = "{" + name + "}"
		desc := ""
		switch {
		case strings.HasPrefix(pattern, openCodePrefix+"/"):
			desc = "a path of OpenCode's server API, without its leading / (slashes are not escaped)"
		case strings.HasSuffix(s, "...}"):
			desc = "a path inside the sandbox, relative to / (slashes are not escaped)"
		}
		params = append(params, map[string]any{
			"name": name, "in": "path", "required": true, "description": desc,
			"schema": map[string]any{"type": "string"},
		})
	}
	return strings.Join(segs, "/"), params
}

func (g *schemaGen) operation(rt route, params []any) map[string]any {
	op := map[string]any{"operationId": rt.op, "tags": []any{rt.tag}, "summary": rt.summary}
	if rt.public {
		op["security"] = []any{}
	}
	if rt.basicAuth {
		op["security"] = basicAuthSecurity()
	}
	for _, q := range rt.query {
		s := map[string]any{"type": q.typ}
		if q.enum != nil {
			s["enum"] = q.enum
		}
		params = append(params, map[string]any{"name": q.name, "in": "query", "required": q.required, "description": q.desc, "schema": s})
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.req != nil || rt.reqRaw != "" {
		content := map[string]any{}
		if rt.req != nil {
			content["application/json"] = map[string]any{"schema": g.schemaOf(reflect.TypeOf(rt.req))}
		}
		if rt.reqRaw != "" {
			content[rt.reqRaw] = map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": rt.reqRaw}}
		}
		op["requestBody"] = map[string]any{"required": !rt.reqOptional, "content": content}
	}
	status := rt.status
	if status == 0 {
		status = http.StatusOK
	}
	content := map[string]any{}
	switch {
	case rt.stream == "sse":
		content["text/event-stream"] = map[string]any{"schema": map[string]any{"type": "string"}}
	case rt.stream == "websocket":
		status = http.StatusSwitchingProtocols
	case rt.plain:
		content["application/json"] = map[string]any{"schema": g.schemaOf(reflect.TypeOf(rt.resp))}
	case rt.resp != nil:
		content["application/json"] = map[string]any{"schema": envelopeSchema(g.dataSchema(rt.resp))}
	}
	if rt.respRaw != "" {
		content[rt.respRaw] = map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": rt.respRaw}}
	}
	ok := map[string]any{"description": http.StatusText(status)}
	if len(content) > 0 {
		ok["content"] = content
	}
	op["responses"] = map[string]any{
		strconv.Itoa(status): ok,
		"default":            map[string]any{"$ref": "#/components/responses/Error"},
	}
	return op
}

func basicAuthSecurity() []any {
	return []any{map[string]any{"bearer": []any{}}, map[string]any{"apiKey": []any{}}, map[string]any{"basic": []any{}}}
}

// proxyMethods are the methods under which the document lists a route of
// every method.
var proxyMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// proxyOperation documents method m of a proxy route: any body in, the
// proxied server's answer out (or an error envelope of ours).
func proxyOperation(rt route, params []any, m string) map[string]any {
	op := map[string]any{
		"operationId": rt.op + m[:1] + strings.ToLower(m[1:]), "tags": []any{rt.tag}, "summary": rt.summary,
		"responses": map[string]any{
			"200": map[string]any{
				"description": "the proxied server's answer, as it is (any status and content type, Server-Sent Events included)",
				"content":     map[string]any{"*/*": map[string]any{"schema": map[string]any{}}},
			},
			"503":     map[string]any{"$ref": "#/components/responses/Error"},
			"default": map[string]any{"$ref": "#/components/responses/Error"},
		},
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.basicAuth {
		op["security"] = basicAuthSecurity()
	}
	if m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch {
		op["requestBody"] = map[string]any{"required": false, "content": map[string]any{"*/*": map[string]any{"schema": map[string]any{}}}}
	}
	return op
}

func (g *schemaGen) dataSchema(v any) map[string]any {
	if alts, ok := v.(alternatives); ok {
		var one []any
		for _, a := range alts {
			one = append(one, g.schemaOf(reflect.TypeOf(a)))
		}
		return map[string]any{"oneOf": one}
	}
	return g.schemaOf(reflect.TypeOf(v))
}

func envelopeSchema(data map[string]any) map[string]any {
	props := map[string]any{
		"success": map[string]any{"type": "boolean"},
		"error":   map[string]any{"type": "string"},
		"code":    map[string]any{"type": "string"},
	}
	if data != nil {
		props["data"] = data
	}
	return map[string]any{"type": "object", "required": []any{"success"}, "properties": props}
}

// schemaGen derives JSON Schemas from Go types, collecting named structs in
// defs (components/schemas).
type schemaGen struct {
	defs map[string]any
}

var timeType = reflect.TypeFor[time.Time]()

func (g *schemaGen) schemaOf(t reflect.Type) map[string]any {
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{g.schemaOf(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.Struct:
		if t.Name() == "" {
			return g.structSchema(t)
		}
		if _, ok := g.defs[t.Name()]; !ok {
			g.defs[t.Name()] = map[string]any{} // placeholder against recursion
			g.defs[t.Name()] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + t.Name()}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schemaOf(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	default:
		return map[string]any{}
	}
}

// structSchema lists t's JSON fields (embedded structs flattened); fields
// without omitempty are required.
func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []any
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" || !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = g.schemaOf(f.Type)
			if !strings.Contains(","+opts+",", ",omitempty,") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	s := map[string]any{"type": "object", "properties": props}
	if required != nil {
		s["required"] = required
	}
	return s
}

func (s *server) openAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(s.openapi)))
	_, _ = w.Write(s.openapi)
}
