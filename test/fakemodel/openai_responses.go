package fakemodel

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// The OpenAI Responses API: POST /v1/responses, streamed or not.

type responsesRequest struct {
	Model  string          `json:"model"`
	Stream bool            `json:"stream"`
	Input  json.RawMessage `json:"input"`
	Tools  []responsesTool `json:"tools"`
}

type responsesTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  any             `json:"parameters"`
	Tools       []responsesTool `json:"tools"` // a namespace's tools
}

// responsesTurn reduces a Responses request to what the script needs.
// Tools come in the request's tools and, from newer Codex versions, in
// "additional_tools" input items; namespaces are flattened.
func responsesTurn(req *responsesRequest, body any) turn {
	t := turn{body: body}
	var add func([]responsesTool)
	add = func(tools []responsesTool) {
		for _, tl := range tools {
			switch tl.Type {
			case "function":
				t.tools = append(t.tools, tool{Name: tl.Name, Desc: tl.Description, Props: schemaProps(tl.Parameters)})
			case "custom":
				t.tools = append(t.tools, tool{Name: tl.Name, Desc: tl.Description, Custom: true})
			case "namespace":
				add(tl.Tools)
			}
		}
	}
	add(req.Tools)
	var items []struct {
		Type  string          `json:"type"`
		Tools []responsesTool `json:"tools"`
	}
	if json.Unmarshal(req.Input, &items) == nil { // else a plain string
		for _, it := range items {
			switch {
			case it.Type == "additional_tools":
				add(it.Tools)
			case strings.HasSuffix(it.Type, "_call_output"):
				t.toolResult = true
			}
		}
	}
	return t
}

func (s *Server) openaiResponses(w http.ResponseWriter, rec *Recorded) {
	var req responsesRequest
	var body any
	if err := json.Unmarshal(rec.Body, &req); err != nil {
		s.badRequest(w, rec, err)
		return
	}
	json.Unmarshal(rec.Body, &body)
	rec.Model, rec.Stream = req.Model, req.Stream
	ans, err := s.decide(responsesTurn(&req, body))
	if err != nil {
		s.fail(w, rec, err.Error())
		return
	}
	rec.Kind = ans.kind

	// The one output item, complete.
	var item map[string]any
	switch c := ans.call; {
	case c == nil:
		item = map[string]any{"type": "message", "id": s.nextID("msg_fake"), "role": "assistant", "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": ans.text, "annotations": []any{}}}}
	case c.Custom:
		item = map[string]any{"type": "custom_tool_call", "id": s.nextID("ctc_fake"), "call_id": s.nextID("call_fake"),
			"name": c.Tool, "input": c.Input, "status": "completed"}
	default:
		item = map[string]any{"type": "function_call", "id": s.nextID("fc_fake"), "call_id": s.nextID("call_fake"),
			"name": c.Tool, "arguments": c.argsJSON(), "status": "completed"}
	}
	if ans.call != nil {
		rec.Tool = ans.call.Tool
	}
	in := len(rec.Body)/4 + 1
	usage := map[string]any{
		"input_tokens": in, "input_tokens_details": map[string]any{"cached_tokens": 0},
		"output_tokens": 10, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
		"total_tokens": in + 10,
	}
	id, created := s.nextID("resp_fake"), time.Now().Unix()
	response := func(status string, output []any, usage any) map[string]any {
		return map[string]any{"id": id, "object": "response", "created_at": created, "status": status,
			"model": req.Model, "output": output, "usage": usage, "error": nil, "incomplete_details": nil}
	}
	if !req.Stream {
		writeJSON(w, http.StatusOK, response("completed", []any{item}, usage))
		return
	}

	e := newSSE(w)
	seq := 0
	send := func(typ string, fields map[string]any) {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		e.event(typ, fields)
	}
	send("response.created", map[string]any{"response": response("in_progress", []any{}, nil)})
	send("response.in_progress", map[string]any{"response": response("in_progress", []any{}, nil)})
	itemID := item["id"]
	added := map[string]any{}
	for k, v := range item {
		added[k] = v
	}
	added["status"] = "in_progress"
	switch item["type"] {
	case "message":
		added["content"] = []any{}
		send("response.output_item.added", map[string]any{"output_index": 0, "item": added})
		part := func() map[string]any {
			return map[string]any{"type": "output_text", "text": "", "annotations": []any{}}
		}
		send("response.content_part.added", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "part": part()})
		for _, d := range chunks(ans.text) {
			send("response.output_text.delta", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "delta": d, "logprobs": []any{}})
		}
		send("response.output_text.done", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "text": ans.text, "logprobs": []any{}})
		done := part()
		done["text"] = ans.text
		send("response.content_part.done", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "part": done})
	case "custom_tool_call":
		added["input"] = ""
		send("response.output_item.added", map[string]any{"output_index": 0, "item": added})
		for _, d := range chunks(ans.call.Input) {
			send("response.custom_tool_call_input.delta", map[string]any{"item_id": itemID, "output_index": 0, "delta": d})
		}
		send("response.custom_tool_call_input.done", map[string]any{"item_id": itemID, "output_index": 0, "input": ans.call.Input})
	case "function_call":
		added["arguments"] = ""
		send("response.output_item.added", map[string]any{"output_index": 0, "item": added})
		args := item["arguments"].(string)
		for _, d := range chunks(args) {
			send("response.function_call_arguments.delta", map[string]any{"item_id": itemID, "output_index": 0, "delta": d})
		}
		send("response.function_call_arguments.done", map[string]any{"item_id": itemID, "output_index": 0, "name": item["name"], "arguments": args})
	}
	send("response.output_item.done", map[string]any{"output_index": 0, "item": item})
	send("response.completed", map[string]any{"response": response("completed", []any{item}, usage)})
}
