package fakemodel

import (
	"encoding/json"
	"net/http"
	"time"
)

// The OpenAI Chat Completions API: POST /v1/chat/completions, streamed or
// not, with tool_calls.

type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role string `json:"role"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name       string `json:"name"`
			Parameters any    `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// chatTurn reduces a Chat Completions request to what the script needs.
func chatTurn(req *chatRequest, body any) turn {
	t := turn{body: body}
	for _, tl := range req.Tools {
		if tl.Function.Name != "" {
			t.tools = append(t.tools, tool{Name: tl.Function.Name, Props: schemaProps(tl.Function.Parameters)})
		}
	}
	for _, m := range req.Messages {
		if m.Role == "tool" || m.Role == "function" {
			t.toolResult = true
		}
	}
	return t
}

func (s *Server) openaiChat(w http.ResponseWriter, rec *Recorded) {
	var req chatRequest
	var body any
	if err := json.Unmarshal(rec.Body, &req); err != nil {
		s.badRequest(w, rec, err)
		return
	}
	json.Unmarshal(rec.Body, &body)
	rec.Model, rec.Stream = req.Model, req.Stream
	ans, err := s.decide(chatTurn(&req, body))
	if err != nil {
		s.fail(w, rec, err.Error())
		return
	}
	rec.Kind = ans.kind

	id, created := s.nextID("chatcmpl-fake"), time.Now().Unix()
	in := len(rec.Body)/4 + 1
	usage := map[string]any{"prompt_tokens": in, "completion_tokens": 10, "total_tokens": in + 10}
	finish := "stop"
	var callID string
	if ans.call != nil {
		rec.Tool = ans.call.Tool
		finish, callID = "tool_calls", s.nextID("call_fake")
	}
	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": ans.text}
		if ans.call != nil {
			msg["content"] = nil
			msg["tool_calls"] = []any{map[string]any{"id": callID, "type": "function",
				"function": map[string]any{"name": ans.call.Tool, "arguments": ans.call.argsJSON()}}}
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}}, "usage": usage})
		return
	}

	e := newSSE(w)
	chunk := func(delta map[string]any, finish any) {
		e.event("", map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
	}
	if ans.call != nil {
		chunk(map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"index": 0, "id": callID, "type": "function",
			"function": map[string]any{"name": ans.call.Tool, "arguments": ""}}}}, nil)
		for _, d := range chunks(ans.call.argsJSON()) {
			chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": d}}}}, nil)
		}
	} else {
		chunk(map[string]any{"role": "assistant", "content": ""}, nil)
		for _, d := range chunks(ans.text) {
			chunk(map[string]any{"content": d}, nil)
		}
	}
	chunk(map[string]any{}, finish)
	if req.StreamOptions.IncludeUsage {
		e.event("", map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{}, "usage": usage})
	}
	e.event("", "[DONE]")
}
