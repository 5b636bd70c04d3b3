package fakemodel_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/test/fakemodel"
)

var testScript = fakemodel.Script{
	FilePath:    "out/hello.txt",
	FileContent: "it's \"quoted\" $HOME `x`\nsecond line",
	FinalText:   "All done.",
	SideText:    "A title",
}

func start(t *testing.T, s fakemodel.Script) (*fakemodel.Server, *httptest.Server) {
	t.Helper()
	f := fakemodel.New(s)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// post sends a JSON body and returns the response.
func post(t *testing.T, url string, body any, header ...string) *http.Response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type event struct {
	name string
	data map[string]any
}

// readSSE parses a server-sent event stream; "[DONE]" data is dropped.
func readSSE(t *testing.T, resp *http.Response) []event {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, content type %q: %s", resp.StatusCode, ct, b)
	}
	var evs []event
	var name string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			d := strings.TrimPrefix(line, "data: ")
			if d == "[DONE]" {
				evs = append(evs, event{name: "[DONE]"})
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(d), &m); err != nil {
				t.Fatalf("event data %q: %v", d, err)
			}
			evs = append(evs, event{name, m})
			name = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("status %d: %s: %v", resp.StatusCode, b, err)
	}
	return m
}

func names(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.name)
	}
	return out
}

// get walks a decoded JSON value along keys and indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func anthropicTools() []any {
	return []any{
		map[string]any{"name": "Bash", "input_schema": map[string]any{"type": "object", "properties": map[string]any{"command": map[string]any{"type": "string"}}}},
		map[string]any{"name": "Write", "input_schema": map[string]any{"type": "object", "properties": map[string]any{
			"file_path": map[string]any{"type": "string"}, "content": map[string]any{"type": "string"}}}},
	}
}

func TestAnthropicStreamToolCallThenFinal(t *testing.T) {
	f, srv := start(t, testScript)
	first := map[string]any{
		"model": "claude-x", "stream": true, "max_tokens": 100, "tools": anthropicTools(),
		"system":   []any{map[string]any{"type": "text", "text": "You are an agent."}},
		"messages": []any{map[string]any{"role": "user", "content": "Env:\n - Primary working directory: /work/dir\nWrite the file."}},
	}
	evs := readSSE(t, post(t, srv.URL+"/v1/messages?beta=true", first, "x-api-key", "sk-ant-1", "anthropic-version", "2023-06-01"))
	want := []string{"message_start", "content_block_start"}
	if got := names(evs); len(got) < 5 || got[0] != want[0] || got[1] != want[1] || got[len(got)-1] != "message_stop" {
		t.Fatalf("events %v", got)
	}
	if typ := str(evs[1].data, "content_block", "type"); typ != "tool_use" {
		t.Fatalf("first block %q, want tool_use", typ)
	}
	if n := str(evs[1].data, "content_block", "name"); n != "Write" {
		t.Fatalf("tool %q, want Write", n)
	}
	var partial strings.Builder
	var stop string
	for _, e := range evs {
		if e.name == "content_block_delta" {
			partial.WriteString(str(e.data, "delta", "partial_json"))
		}
		if e.name == "message_delta" {
			stop = str(e.data, "delta", "stop_reason")
		}
	}
	var input map[string]string
	if err := json.Unmarshal([]byte(partial.String()), &input); err != nil {
		t.Fatalf("tool input %q: %v", partial.String(), err)
	}
	if input["file_path"] != "/work/dir/out/hello.txt" || input["content"] != testScript.FileContent {
		t.Fatalf("tool input %v", input)
	}
	if stop != "tool_use" {
		t.Fatalf("stop_reason %q", stop)
	}

	// The next request carries the tool result: the final text.
	id := str(evs[1].data, "content_block", "id")
	second := first
	second["messages"] = []any{
		first["messages"].([]any)[0],
		map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": id, "name": "Write", "input": input}}},
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": id, "content": "ok"}}},
	}
	evs = readSSE(t, post(t, srv.URL+"/v1/messages", second, "x-api-key", "sk-ant-1"))
	var text strings.Builder
	for _, e := range evs {
		if e.name == "content_block_delta" {
			text.WriteString(str(e.data, "delta", "text"))
		}
		if e.name == "message_delta" {
			stop = str(e.data, "delta", "stop_reason")
		}
	}
	if text.String() != testScript.FinalText || stop != "end_turn" {
		t.Fatalf("final %q stop %q", text.String(), stop)
	}
	if f.Count(fakemodel.KindToolCall) != 1 || f.Count(fakemodel.KindFinal) != 1 {
		t.Fatalf("kinds: %+v", f.Requests())
	}
}

func TestAnthropicNonStreamSideAndCount(t *testing.T) {
	f, srv := start(t, testScript)
	// A side request (no tools), not streamed: a short text, script untouched.
	m := decode(t, post(t, srv.URL+"/v1/messages", map[string]any{
		"model": "claude-haiku", "max_tokens": 10, "messages": []any{map[string]any{"role": "user", "content": "Generate a title"}},
	}))
	if str(m, "content", 0, "text") != testScript.SideText || str(m, "stop_reason") != "end_turn" || str(m, "type") != "message" {
		t.Fatalf("side answer %v", m)
	}
	// The main conversation still starts with the tool call.
	m = decode(t, post(t, srv.URL+"/v1/messages", map[string]any{
		"model": "claude-x", "max_tokens": 10, "tools": anthropicTools(),
		"messages": []any{map[string]any{"role": "user", "content": "go"}},
	}))
	if str(m, "content", 0, "type") != "tool_use" || str(m, "stop_reason") != "tool_use" {
		t.Fatalf("main answer %v", m)
	}
	// No working directory in the prompt: the path as scripted.
	if p := str(m, "content", 0, "input", "file_path"); p != testScript.FilePath {
		t.Fatalf("file_path %q", p)
	}
	m = decode(t, post(t, srv.URL+"/v1/messages/count_tokens", map[string]any{"model": "claude-x", "messages": []any{}}))
	if n, _ := m["input_tokens"].(float64); n <= 0 {
		t.Fatalf("count_tokens %v", m)
	}
	if f.Count(fakemodel.KindSide) != 1 || f.Count(fakemodel.KindToolCall) != 1 || f.Count(fakemodel.KindCount) != 1 {
		t.Fatalf("kinds: %+v", f.Requests())
	}
}

func TestNoWriteToolFailsLoudly(t *testing.T) {
	f, srv := start(t, testScript)
	resp := post(t, srv.URL+"/v1/messages", map[string]any{
		"model": "claude-x", "stream": true, "messages": []any{map[string]any{"role": "user", "content": "hi"}},
		"tools": []any{map[string]any{"name": "Read", "input_schema": map[string]any{"type": "object", "properties": map[string]any{"file_path": map[string]any{"type": "string"}}}}},
	})
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "Read") {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if errs := f.Errors(); len(errs) != 1 || !strings.Contains(errs[0], "no known tool") {
		t.Fatalf("errors %v", errs)
	}
}

func TestResponsesFunctionCallThenFinal(t *testing.T) {
	f, srv := start(t, testScript)
	tools := []any{
		map[string]any{"type": "function", "name": "write_stdin", "parameters": map[string]any{"type": "object", "properties": map[string]any{"chars": map[string]any{"type": "string"}}}},
		map[string]any{"type": "function", "name": "exec_command", "parameters": map[string]any{"type": "object", "properties": map[string]any{"cmd": map[string]any{"type": "string"}}}},
		map[string]any{"type": "web_search"},
	}
	dir := t.TempDir()
	input := []any{
		map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "<environment_context>\n  <cwd>" + dir + "</cwd>\n</environment_context>"}}},
		map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "write it"}}},
	}
	evs := readSSE(t, post(t, srv.URL+"/v1/responses", map[string]any{"model": "gpt-x", "stream": true, "input": input, "tools": tools},
		"Authorization", "Bearer sk-openai-1"))
	got := names(evs)
	want := []string{"response.created", "response.in_progress", "response.output_item.added"}
	for i, w := range want {
		if i >= len(got) || got[i] != w {
			t.Fatalf("events %v", got)
		}
	}
	if got[len(got)-1] != "response.completed" || got[len(got)-2] != "response.output_item.done" {
		t.Fatalf("events %v", got)
	}
	var args strings.Builder
	for _, e := range evs {
		if e.name == "response.function_call_arguments.delta" {
			args.WriteString(str(e.data, "delta"))
		}
		if seq, ok := e.data["sequence_number"].(float64); !ok || seq < 0 {
			t.Fatalf("event %s without sequence_number", e.name)
		}
	}
	done := evs[len(evs)-2].data["item"]
	if str(done, "type") != "function_call" || str(done, "name") != "exec_command" || str(done, "arguments") != args.String() {
		t.Fatalf("item %v, streamed args %q", done, args.String())
	}
	var a map[string]string
	if err := json.Unmarshal([]byte(args.String()), &a); err != nil {
		t.Fatal(err)
	}
	// The command writes the file exactly.
	if out, err := exec.Command("sh", "-c", a["cmd"]).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", a["cmd"], err, out)
	}
	checkFile(t, filepath.Join(dir, testScript.FilePath), testScript.FileContent)

	input = append(input,
		done,
		map[string]any{"type": "function_call_output", "call_id": str(done, "call_id"), "output": "ok"},
	)
	evs = readSSE(t, post(t, srv.URL+"/v1/responses", map[string]any{"model": "gpt-x", "stream": true, "input": input, "tools": tools}))
	var text strings.Builder
	for _, e := range evs {
		if e.name == "response.output_text.delta" {
			text.WriteString(str(e.data, "delta"))
		}
	}
	last := evs[len(evs)-1].data
	if text.String() != testScript.FinalText || str(last, "response", "status") != "completed" ||
		str(last, "response", "output", 0, "content", 0, "text") != testScript.FinalText {
		t.Fatalf("final %q, completed %v", text.String(), last)
	}
	if f.Count(fakemodel.KindToolCall) != 1 || f.Count(fakemodel.KindFinal) != 1 {
		t.Fatalf("kinds: %+v", f.Requests())
	}
}

func TestResponsesCodeModeAndApplyPatch(t *testing.T) {
	_, srv := start(t, testScript)
	// Codex's code mode: tools in an additional_tools input item, in a
	// namespace, with a freeform exec tool that runs JavaScript.
	input := []any{
		map[string]any{"type": "additional_tools", "role": "developer", "tools": []any{
			map[string]any{"type": "namespace", "name": "functions", "tools": []any{
				map[string]any{"type": "custom", "name": "exec", "description": "Run JavaScript.\ndeclare const tools: { exec_command(args: { cmd: string }): Promise<unknown>; };"},
			}},
		}},
		map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "go"}}},
	}
	m := decode(t, post(t, srv.URL+"/v1/responses", map[string]any{"model": "gpt-x", "input": input}))
	item := get(m, "output", 0)
	if str(item, "type") != "custom_tool_call" || str(item, "name") != "exec" || !strings.Contains(str(item, "input"), "await tools.exec_command({cmd: ") {
		t.Fatalf("item %v", item)
	}

	// A freeform apply_patch tool: an Add File patch.
	m = decode(t, post(t, srv.URL+"/v1/responses", map[string]any{"model": "gpt-x", "input": "go",
		"tools": []any{map[string]any{"type": "custom", "name": "apply_patch"}}}))
	item = get(m, "output", 0)
	wantPatch := "*** Begin Patch\n*** Add File: out/hello.txt\n+it's \"quoted\" $HOME `x`\n+second line\n*** End Patch"
	if str(item, "type") != "custom_tool_call" || str(item, "input") != wantPatch {
		t.Fatalf("item %v", item)
	}

	// The result of a custom tool call ends the turn.
	input = append(input, item, map[string]any{"type": "custom_tool_call_output", "call_id": str(item, "call_id"), "output": "ok"})
	m = decode(t, post(t, srv.URL+"/v1/responses", map[string]any{"model": "gpt-x", "input": input}))
	if str(m, "output", 0, "content", 0, "text") != testScript.FinalText {
		t.Fatalf("final %v", m)
	}
}

func TestChatCompletionsStream(t *testing.T) {
	f, srv := start(t, testScript)
	tools := []any{map[string]any{"type": "function", "function": map[string]any{"name": "write", "parameters": map[string]any{
		"type": "object", "properties": map[string]any{"filePath": map[string]any{"type": "string"}, "content": map[string]any{"type": "string"}}}}}}
	msgs := []any{map[string]any{"role": "system", "content": "Working directory: /w"}, map[string]any{"role": "user", "content": "go"}}
	body := map[string]any{"model": "m", "stream": true, "stream_options": map[string]any{"include_usage": true}, "messages": msgs, "tools": tools}
	evs := readSSE(t, post(t, srv.URL+"/v1/chat/completions", body, "Authorization", "Bearer sk-chat"))
	var name, args, finish string
	var usage bool
	for _, e := range evs {
		if e.name == "[DONE]" {
			continue
		}
		if n := str(e.data, "choices", 0, "delta", "tool_calls", 0, "function", "name"); n != "" {
			name = n
		}
		args += str(e.data, "choices", 0, "delta", "tool_calls", 0, "function", "arguments")
		if fr := str(e.data, "choices", 0, "finish_reason"); fr != "" {
			finish = fr
		}
		usage = usage || e.data["usage"] != nil
	}
	if evs[len(evs)-1].name != "[DONE]" || name != "write" || finish != "tool_calls" || !usage {
		t.Fatalf("name %q finish %q usage %v events %d", name, finish, usage, len(evs))
	}
	var a map[string]string
	if err := json.Unmarshal([]byte(args), &a); err != nil || a["filePath"] != "/w/out/hello.txt" || a["content"] != testScript.FileContent {
		t.Fatalf("args %q: %v", args, err)
	}

	body["messages"] = append(msgs, map[string]any{"role": "assistant", "tool_calls": []any{}}, map[string]any{"role": "tool", "tool_call_id": "x", "content": "ok"})
	body["stream"] = false
	m := decode(t, post(t, srv.URL+"/v1/chat/completions", body))
	if str(m, "choices", 0, "message", "content") != testScript.FinalText || str(m, "choices", 0, "finish_reason") != "stop" {
		t.Fatalf("final %v", m)
	}
	if f.Count(fakemodel.KindFinal) != 1 {
		t.Fatalf("kinds: %+v", f.Requests())
	}
}

func geminiBody(withTools bool, contents ...any) map[string]any {
	b := map[string]any{"contents": contents}
	if withTools {
		b["tools"] = []any{map[string]any{"functionDeclarations": []any{
			map[string]any{"name": "read_file", "parametersJsonSchema": map[string]any{"type": "object", "properties": map[string]any{"file_path": map[string]any{"type": "string"}}}},
			map[string]any{"name": "write_file", "parametersJsonSchema": map[string]any{"type": "object", "properties": map[string]any{
				"file_path": map[string]any{"type": "string"}, "content": map[string]any{"type": "string"}}}},
		}}}
	}
	return b
}

func TestGeminiStreamFunctionCallThenFinal(t *testing.T) {
	f, srv := start(t, testScript)
	user := map[string]any{"role": "user", "parts": []any{map[string]any{"text": "- **Workspace Directories:**\n  - /ws\n"}, map[string]any{"text": "go"}}}
	url := srv.URL + "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
	evs := readSSE(t, post(t, url, geminiBody(true, user), "x-goog-api-key", "g-key"))
	if len(evs) != 1 {
		t.Fatalf("%d chunks", len(evs))
	}
	fc := get(evs[0].data, "candidates", 0, "content", "parts", 0, "functionCall")
	if str(fc, "name") != "write_file" || str(fc, "args", "file_path") != "/ws/out/hello.txt" || str(fc, "args", "content") != testScript.FileContent {
		t.Fatalf("functionCall %v", fc)
	}
	if str(evs[0].data, "candidates", 0, "finishReason") != "STOP" || get(evs[0].data, "usageMetadata") == nil {
		t.Fatalf("chunk %v", evs[0].data)
	}

	model := map[string]any{"role": "model", "parts": []any{map[string]any{"functionCall": fc}}}
	result := map[string]any{"role": "user", "parts": []any{map[string]any{"functionResponse": map[string]any{"name": "write_file", "response": map[string]any{"output": "ok"}}}}}
	evs = readSSE(t, post(t, url, geminiBody(true, user, model, result), "x-goog-api-key", "g-key"))
	var text string
	for _, e := range evs {
		text += str(e.data, "candidates", 0, "content", "parts", 0, "text")
	}
	if text != testScript.FinalText || str(evs[len(evs)-1].data, "candidates", 0, "finishReason") != "STOP" {
		t.Fatalf("final %q", text)
	}

	// Without alt=sse the stream is a JSON array.
	resp := post(t, srv.URL+"/v1beta/models/gemini-x:streamGenerateContent?key=q-key", geminiBody(true, user, model, result))
	var arr []any
	if err := json.NewDecoder(resp.Body).Decode(&arr); err != nil || len(arr) == 0 {
		t.Fatalf("array stream: %v %v", arr, err)
	}
	if f.Count(fakemodel.KindToolCall) != 1 || f.Count(fakemodel.KindFinal) != 2 {
		t.Fatalf("kinds: %+v", f.Requests())
	}
}

func TestGeminiSideRequestsAndCount(t *testing.T) {
	f, srv := start(t, testScript)
	user := map[string]any{"role": "user", "parts": []any{map[string]any{"text": "go"}}}
	// A next-speaker check: JSON against a schema, answered to fit it.
	body := geminiBody(false, user)
	body["generationConfig"] = map[string]any{"responseMimeType": "application/json", "responseJsonSchema": map[string]any{
		"type": "object", "required": []any{"reasoning", "next_speaker", "score"},
		"properties": map[string]any{
			"reasoning":    map[string]any{"type": "string"},
			"next_speaker": map[string]any{"type": "string", "enum": []any{"model", "user"}},
			"score":        map[string]any{"type": "INTEGER"},
		}}}
	m := decode(t, post(t, srv.URL+"/v1beta/models/flash:generateContent", body))
	var got map[string]any
	if err := json.Unmarshal([]byte(str(m, "candidates", 0, "content", "parts", 0, "text")), &got); err != nil {
		t.Fatalf("side JSON %v: %v", m, err)
	}
	if got["next_speaker"] != "user" || got["score"] != float64(1) || got["reasoning"] == nil {
		t.Fatalf("side JSON %v", got)
	}
	// A plain side request: the side text.
	m = decode(t, post(t, srv.URL+"/v1beta/models/flash:generateContent", geminiBody(false, user)))
	if str(m, "candidates", 0, "content", "parts", 0, "text") != testScript.SideText {
		t.Fatalf("side %v", m)
	}
	m = decode(t, post(t, srv.URL+"/v1beta/models/flash:countTokens", geminiBody(false, user)))
	if n, _ := m["totalTokens"].(float64); n <= 0 {
		t.Fatalf("countTokens %v", m)
	}
	if f.Count(fakemodel.KindSide) != 2 || f.Count(fakemodel.KindToolCall) != 0 {
		t.Fatalf("kinds: %+v", f.Requests())
	}
}

func TestRecordingAndKeys(t *testing.T) {
	f, srv := start(t, fakemodel.Script{FilePath: "a", FileContent: "b", FinalText: "c"})
	post(t, srv.URL+"/v1/messages", map[string]any{"model": "m", "messages": []any{}}, "x-api-key", "k-anthropic")
	post(t, srv.URL+"/v1/responses", map[string]any{"model": "m", "input": "hi"}, "Authorization", "Bearer k-openai")
	post(t, srv.URL+"/v1beta/models/g:generateContent?key=k-query", geminiBody(false), "x-goog-api-key", "k-gemini")
	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	want := []fakemodel.KeyUse{
		{API: fakemodel.Anthropic, Header: "x-api-key", Key: "k-anthropic"},
		{API: fakemodel.OpenAIResponses, Header: "authorization", Key: "k-openai"},
		{API: fakemodel.Gemini, Header: "x-goog-api-key", Key: "k-gemini"},
		{API: fakemodel.Gemini, Header: "?key", Key: "k-query"},
	}
	got := f.KeyHeaders()
	if len(got) != len(want) {
		t.Fatalf("keys %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("key %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	reqs := f.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[2]
	if r.Method != "POST" || r.Path != "/v1beta/models/g:generateContent" || r.Query != "key=k-query" || r.API != fakemodel.Gemini ||
		r.Model != "g" || r.Header.Get("X-Goog-Api-Key") != "k-gemini" || !bytes.Contains(r.Body, []byte(`"contents"`)) || r.Status != 200 {
		t.Fatalf("recorded %+v", r)
	}
	if reqs[3].Method != "GET" || reqs[3].Kind != fakemodel.KindOther || reqs[3].Status != 200 {
		t.Fatalf("recorded %+v", reqs[3])
	}
}

func TestOutboundRefused(t *testing.T) {
	f, srv := start(t, testScript)
	proxy, _ := url.Parse(srv.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	for _, u := range []string{"https://telemetry.example.com/v1/log", "http://updates.example.com/latest"} {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s: %d", u, resp.StatusCode)
			}
		}
	}
	// Through the proxy to the fake itself is served.
	resp, err := client.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("self through proxy: %d", resp.StatusCode)
	}
	got := f.Outbound()
	if len(got) != 2 || got[0] != "telemetry.example.com:443" || got[1] != "updates.example.com" {
		t.Fatalf("outbound %v", got)
	}
}

func checkFile(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s has %q, want %q", p, got, want)
	}
}
