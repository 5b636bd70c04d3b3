package mcp

import (
	"encoding/json"
	"errors"
	"reflect"

	"github.com/google/jsonschema-go/jsonschema"
)

// Command is a tool's command: a JSON array of strings (argv) or a single
// string, which runs under sh -c.
type Command []string

// UnmarshalJSON accepts an array of strings or one shell string.
func (c *Command) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			return errors.New("command is empty")
		}
		*c = Command{"sh", "-c", s}
		return nil
	}
	var argv []string
	if err := json.Unmarshal(b, &argv); err != nil {
		return errors.New("command must be an array of strings or a shell command string")
	}
	*c = argv
	return nil
}

// schemaOptions gives Command its schema: a string or an array of strings.
var schemaOptions = &jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[Command](): {
		Description: "argv as an array of strings, or one string run with sh -c",
		AnyOf: []*jsonschema.Schema{
			{Type: "array", Items: &jsonschema.Schema{Type: "string"}, MinItems: jsonschema.Ptr(1)},
			{Type: "string", MinLength: jsonschema.Ptr(1)},
		},
	},
}}

// inputSchema is T's JSON Schema with Command described as above.
func inputSchema[T any]() *jsonschema.Schema {
	s, err := jsonschema.For[T](schemaOptions)
	if err != nil {
		panic(err) // the input types are fixed: a failure is a bug here
	}
	return s
}
