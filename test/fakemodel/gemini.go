package fakemodel

import (
	"encoding/json"
	"net/http"
	"strings"
)

// The Gemini API: POST /v1beta/models/{model}:streamGenerateContent (SSE
// with ?alt=sse, else a JSON array), :generateContent and :countTokens.

type geminiRequest struct {
	Contents []struct {
		Role  string           `json:"role"`
		Parts []map[string]any `json:"parts"`
	} `json:"contents"`
	Tools []struct {
		FunctionDeclarations []struct {
			Name                 string `json:"name"`
			Parameters           any    `json:"parameters"`
			ParametersJSONSchema any    `json:"parametersJsonSchema"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
	GenerationConfig struct {
		ResponseMimeType   string `json:"responseMimeType"`
		ResponseSchema     any    `json:"responseSchema"`
		ResponseJSONSchema any    `json:"responseJsonSchema"`
	} `json:"generationConfig"`
}

// geminiTurn reduces a generateContent request to what the script needs.
func geminiTurn(req *geminiRequest, body any) turn {
	t := turn{body: body}
	for _, tl := range req.Tools {
		for _, fd := range tl.FunctionDeclarations {
			schema := fd.ParametersJSONSchema
			if schema == nil {
				schema = fd.Parameters
			}
			t.tools = append(t.tools, tool{Name: fd.Name, Props: schemaProps(schema)})
		}
	}
	for _, c := range req.Contents {
		for _, p := range c.Parts {
			if p["functionResponse"] != nil {
				t.toolResult = true
			}
		}
	}
	return t
}

func (s *Server) gemini(w http.ResponseWriter, r *http.Request, rec *Recorded) {
	rest := r.URL.Path[strings.Index(r.URL.Path, "/models/")+len("/models/"):]
	i := strings.LastIndex(rest, ":")
	model, method := rest[:i], rest[i+1:]
	rec.Model = model

	var req geminiRequest
	var body any
	if err := json.Unmarshal(rec.Body, &req); err != nil {
		s.badRequest(w, rec, err)
		return
	}
	json.Unmarshal(rec.Body, &body)

	switch method {
	case "countTokens":
		rec.Kind = KindCount
		writeJSON(w, http.StatusOK, map[string]any{"totalTokens": len(rec.Body)/4 + 1})
		return
	case "generateContent", "streamGenerateContent":
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": 404, "status": "NOT_FOUND",
			"message": "fakemodel: no such method: " + method}})
		return
	}
	rec.Stream = method == "streamGenerateContent"

	ans, err := s.decide(geminiTurn(&req, body))
	if err != nil {
		s.fail(w, rec, err.Error())
		return
	}
	rec.Kind = ans.kind
	text := ans.text
	if ans.kind == KindSide {
		if schema := req.GenerationConfig.ResponseJSONSchema; schema != nil {
			text = mustJSON(sampleJSON(schema))
		} else if schema := req.GenerationConfig.ResponseSchema; schema != nil {
			text = mustJSON(sampleJSON(schema))
		} else if req.GenerationConfig.ResponseMimeType == "application/json" {
			text = "{}"
		}
	}

	id := s.nextID("fake")
	in := len(rec.Body)/4 + 1
	response := func(parts []any, final bool) map[string]any {
		cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
		resp := map[string]any{"candidates": []any{cand}, "modelVersion": model, "responseId": id}
		if final {
			cand["finishReason"] = "STOP"
			resp["usageMetadata"] = map[string]any{"promptTokenCount": in, "candidatesTokenCount": 10, "totalTokenCount": in + 10}
		}
		return resp
	}
	// The whole answer's parts, and the stream of chunks that carries them.
	var whole []any
	var stream []map[string]any
	if ans.call != nil {
		rec.Tool = ans.call.Tool
		whole = []any{map[string]any{"functionCall": map[string]any{"name": ans.call.Tool, "args": ans.call.Args}}}
		stream = append(stream, response(whole, true))
	} else {
		whole = []any{map[string]any{"text": text}}
		parts := chunks(text)
		for i, p := range parts {
			stream = append(stream, response([]any{map[string]any{"text": p}}, i == len(parts)-1))
		}
	}

	switch {
	case !rec.Stream:
		writeJSON(w, http.StatusOK, response(whole, true))
	case r.URL.Query().Get("alt") == "sse":
		e := newSSE(w)
		for _, c := range stream {
			e.event("", c)
		}
	default:
		writeJSON(w, http.StatusOK, stream)
	}
}
