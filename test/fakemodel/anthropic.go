package fakemodel

import (
	"encoding/json"
	"net/http"
)

// The Anthropic Messages API: POST /v1/messages (streamed or not) and
// POST /v1/messages/count_tokens.

type anthropicRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name        string `json:"name"`
		Type        string `json:"type"`
		InputSchema any    `json:"input_schema"`
	} `json:"tools"`
}

// anthropicTurn reduces a Messages request to what the script needs.
func anthropicTurn(req *anthropicRequest, body any) turn {
	t := turn{body: body}
	for _, tl := range req.Tools {
		if tl.Name != "" {
			t.tools = append(t.tools, tool{Name: tl.Name, Props: schemaProps(tl.InputSchema)})
		}
	}
	for _, m := range req.Messages {
		var blocks []struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue // plain string content
		}
		for _, b := range blocks {
			if b.Type == "tool_result" {
				t.toolResult = true
			}
		}
	}
	return t
}

func (s *Server) anthropicMessages(w http.ResponseWriter, rec *Recorded) {
	var req anthropicRequest
	var body any
	if err := json.Unmarshal(rec.Body, &req); err != nil {
		s.badRequest(w, rec, err)
		return
	}
	json.Unmarshal(rec.Body, &body)
	rec.Model, rec.Stream = req.Model, req.Stream
	ans, err := s.decide(anthropicTurn(&req, body))
	if err != nil {
		s.fail(w, rec, err.Error())
		return
	}
	rec.Kind = ans.kind

	id := s.nextID("msg_fake")
	var block map[string]any // the content block, complete
	stop := "end_turn"
	if ans.call != nil {
		rec.Tool = ans.call.Tool
		block = map[string]any{"type": "tool_use", "id": s.nextID("toolu_fake"), "name": ans.call.Tool, "input": ans.call.Args}
		stop = "tool_use"
	} else {
		block = map[string]any{"type": "text", "text": ans.text}
	}
	inTokens, outTokens := len(rec.Body)/4+1, 10
	if !req.Stream {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": req.Model,
			"content": []any{block}, "stop_reason": stop, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": inTokens, "output_tokens": outTokens},
		})
		return
	}

	e := newSSE(w)
	e.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": req.Model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": inTokens, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
	}})
	if ans.call != nil {
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{
			"type": "tool_use", "id": block["id"], "name": block["name"], "input": map[string]any{},
		}})
		for _, part := range chunks(ans.call.argsJSON()) {
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "input_json_delta", "partial_json": part}})
		}
	} else {
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		e.event("ping", map[string]any{"type": "ping"})
		for _, part := range chunks(ans.text) {
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": part}})
		}
	}
	e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	e.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": outTokens}})
	e.event("message_stop", map[string]any{"type": "message_stop"})
}

func (s *Server) anthropicCountTokens(w http.ResponseWriter, rec *Recorded) {
	var req anthropicRequest
	json.Unmarshal(rec.Body, &req)
	rec.Model, rec.Kind = req.Model, KindCount
	writeJSON(w, http.StatusOK, map[string]any{"input_tokens": len(rec.Body)/4 + 1})
}
