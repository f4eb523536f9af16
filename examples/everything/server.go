package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Limits that keep every loop and allocation in a tool bounded, whatever a
// client asks for.
const (
	maxBytes    = 64 << 20 // big, stderr
	maxCount    = 10000    // progress steps, log messages
	maxDuration = 10 * time.Minute
)

// env is what the server needs from the process around it. main hands in the
// real stderr and os.Exit; tests hand in recorders.
type env struct {
	stderr  io.Writer
	exit    func(code int)
	garbage func(line string) error // writes one non-JSON line on stdout
}

// Fixed texts the conformance suite looks for (or at least accepts).
const (
	simpleText          = "This is a simple text response for testing."
	staticText          = "This is the content of the static text resource."
	embeddedText        = "This is an embedded resource content."
	promptResourceText  = "Embedded resource content for testing."
	errorText           = "This tool intentionally returns an error for testing"
	jsonSchemaDialect   = "https://json-schema.org/draft/2020-12/schema"
	templateURIPattern  = "test://template/{id}/data"
	defaultGarbageLine  = "this line is not JSON-RPC"
	watchedResourceURI  = "test://watched-resource"
	mixedContentJSON    = `{"test":"data","value":123}`
	mixedContentURI     = "test://mixed-content-resource"
	embeddedResourceURI = "test://embedded-resource"
)

// completionWords feeds completion/complete for every prompt argument.
var completionWords = []string{"paris", "park", "party", "test", "testValue1", "testValue2", "tester"}

// newServer builds the everything server: the conformance suite's fixture
// tools, resources and prompts, plus the tools mcpwrap's own tests drive.
func newServer(e env) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "everything", Version: "1.0.0"}, &mcp.ServerOptions{
		CompletionHandler: complete,
		// Subscriptions are accepted for any URI, so that tests can watch
		// made-up URIs and fire updates with the touch tool. The SDK keeps
		// track of who subscribed to what.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	png := redPixelPNG()
	addConformanceTools(s, png)
	addStatelessTools(s)
	addTestTools(s, e)
	addResources(s, png)
	addPrompts(s, png)
	return s
}

func textResult(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// pause waits for d or until ctx ends, whichever comes first.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

type noArgs struct{}

func addConformanceTools(s *mcp.Server, png []byte) {
	mcp.AddTool(s, &mcp.Tool{Name: "test_simple_text", Description: "Returns one fixed text content."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			return textResult("%s", simpleText), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_image_content", Description: "Returns a 1x1 red PNG as image content."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: png, MIMEType: "image/png"}}}, nil, nil
		})

	wav := silentWAV(80)
	mcp.AddTool(s, &mcp.Tool{Name: "test_audio_content", Description: "Returns 10 ms of silence as audio/wav content."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: wav, MIMEType: "audio/wav"}}}, nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_embedded_resource", Description: "Returns an embedded text resource."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
				URI: embeddedResourceURI, MIMEType: "text/plain", Text: embeddedText,
			}}}}, nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_multiple_content_types", Description: "Returns text, image and embedded resource content together."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{
				&mcp.TextContent{Text: "Multiple content types test:"},
				&mcp.ImageContent{Data: png, MIMEType: "image/png"},
				&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: mixedContentURI, MIMEType: "application/json", Text: mixedContentJSON}},
			}}, nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_tool_with_logging", Description: "Sends three info log notifications 50 ms apart, then returns."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			steps := []string{"Tool execution started", "Tool processing data", "Tool execution completed"}
			for i, msg := range steps {
				if i > 0 {
					if err := pause(ctx, 50*time.Millisecond); err != nil {
						return nil, nil, err
					}
				}
				if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "everything", Data: msg}); err != nil {
					return nil, nil, fmt.Errorf("sending log notification: %w", err)
				}
			}
			return textResult("Tool with logging completed"), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_tool_with_progress", Description: "Reports progress 0, 50 and 100 of 100, 50 ms apart, when the call carries a progress token."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			for i, p := range []float64{0, 50, 100} {
				if i > 0 {
					if err := pause(ctx, 50*time.Millisecond); err != nil {
						return nil, nil, err
					}
				}
				if token == nil {
					continue
				}
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: p, Total: 100}); err != nil {
					return nil, nil, fmt.Errorf("sending progress: %w", err)
				}
			}
			return textResult("Tool with progress completed"), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_error_handling", Description: "Always fails with a tool error (isError: true)."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			res := textResult("%s", errorText)
			res.IsError = true
			return res, nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_reconnection", Description: "Asks the transport to close the request's SSE stream (when it can), waits 100 ms, then returns."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			// Over stdio there is no stream to close, so the call simply
			// completes; a transport that can close the stream proves it can
			// deliver the result after the client reconnects.
			if req.Extra != nil && req.Extra.CloseSSEStream != nil {
				req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 100 * time.Millisecond})
			}
			if err := pause(ctx, 100*time.Millisecond); err != nil {
				return nil, nil, err
			}
			return textResult("Reconnection test completed"), nil, nil
		})

	type promptArgs struct {
		Prompt string `json:"prompt" jsonschema:"the prompt to send to the client's LLM"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "test_sampling", Description: "Asks the client to sample an LLM reply to prompt (maxTokens 100) and returns it."},
		func(ctx context.Context, req *mcp.CallToolRequest, in promptArgs) (*mcp.CallToolResult, any, error) {
			reply, pending, err := sample(ctx, req, in.Prompt)
			if pending != nil || err != nil {
				return pending, nil, err
			}
			return textResult("LLM response: %s", reply), nil, nil
		})

	type messageArgs struct {
		Message string `json:"message" jsonschema:"the message to show the user"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "test_elicitation", Description: "Asks the user for a username and an email address."},
		func(ctx context.Context, req *mcp.CallToolRequest, in messageArgs) (*mcp.CallToolResult, any, error) {
			schema := objectSchema(map[string]any{
				"username": map[string]any{"type": "string", "description": "User's response"},
				"email":    map[string]any{"type": "string", "description": "User's email address"},
			}, "username", "email")
			res, pending, err := elicit(ctx, req, &mcp.ElicitParams{Message: in.Message, RequestedSchema: schema})
			if pending != nil || err != nil {
				return pending, nil, err
			}
			return textResult("User response: %s", describeElicit(res)), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_elicitation_sep1034_defaults", Description: "Elicits a form whose string, integer, number, enum and boolean fields all carry defaults (SEP-1034)."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			schema := objectSchema(map[string]any{
				"name":     map[string]any{"type": "string", "description": "Your name", "default": "John Doe"},
				"age":      map[string]any{"type": "integer", "description": "Your age", "default": 30},
				"score":    map[string]any{"type": "number", "description": "Your score", "default": 95.5},
				"status":   map[string]any{"type": "string", "description": "Account status", "enum": []string{"active", "inactive", "pending"}, "default": "active"},
				"verified": map[string]any{"type": "boolean", "description": "Whether the account is verified", "default": true},
			})
			res, pending, err := elicit(ctx, req, &mcp.ElicitParams{Message: "Please review and update the form fields with defaults", RequestedSchema: schema})
			if pending != nil || err != nil {
				return pending, nil, err
			}
			return textResult("Elicitation completed: %s", describeElicit(res)), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_elicitation_sep1330_enums", Description: "Elicits a form using all five enum shapes of SEP-1330."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			titled := func(pairs ...string) []map[string]string {
				var out []map[string]string
				for i := 0; i+1 < len(pairs); i += 2 {
					out = append(out, map[string]string{"const": pairs[i], "title": pairs[i+1]})
				}
				return out
			}
			schema := objectSchema(map[string]any{
				"untitledSingle": map[string]any{"type": "string", "description": "Pick one", "enum": []string{"option1", "option2", "option3"}},
				"titledSingle": map[string]any{"type": "string", "description": "Pick one",
					"oneOf": titled("value1", "First Option", "value2", "Second Option", "value3", "Third Option")},
				"legacyEnum": map[string]any{"type": "string", "description": "Pick one",
					"enum": []string{"opt1", "opt2", "opt3"}, "enumNames": []string{"Option One", "Option Two", "Option Three"}},
				"untitledMulti": map[string]any{"type": "array", "description": "Pick any",
					"items": map[string]any{"type": "string", "enum": []string{"option1", "option2", "option3"}}},
				"titledMulti": map[string]any{"type": "array", "description": "Pick any",
					"items": map[string]any{"anyOf": titled("value1", "First Choice", "value2", "Second Choice", "value3", "Third Choice")}},
			})
			res, pending, err := elicit(ctx, req, &mcp.ElicitParams{Message: "Please choose from the enum fields", RequestedSchema: schema})
			if pending != nil || err != nil {
				return pending, nil, err
			}
			return textResult("Elicitation completed: %s", describeElicit(res)), nil, nil
		})

	// The raw AddTool keeps the input schema byte for byte, so that every
	// 2020-12 keyword survives tools/list.
	s.AddTool(&mcp.Tool{
		Name:        "json_schema_2020_12_tool",
		Description: "Tool with JSON Schema 2020-12 features",
		InputSchema: json.RawMessage(jsonSchema202012),
	}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return textResult("received %s", string(req.Params.Arguments)), nil
	})
}

// jsonSchema202012 uses $schema, $defs with an $anchor, $ref, allOf/anyOf,
// if/then/else and additionalProperties.
const jsonSchema202012 = `{
	"$schema": "` + jsonSchemaDialect + `",
	"type": "object",
	"$defs": {
		"address": {
			"$anchor": "addressDef",
			"type": "object",
			"properties": {"street": {"type": "string"}, "city": {"type": "string"}}
		}
	},
	"properties": {
		"name": {"type": "string"},
		"address": {"$ref": "#/$defs/address"},
		"contactMethod": {"type": "string", "enum": ["phone", "email"]},
		"phone": {"type": "string"},
		"email": {"type": "string"}
	},
	"allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
	"if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
	"then": {"required": ["phone"]},
	"else": {"required": ["email"]},
	"additionalProperties": false
}`

func objectSchema(props map[string]any, required ...string) map[string]any {
	schema := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		schema["required"] = required
	}
	return schema
}

func describeElicit(res *mcp.ElicitResult) string {
	content, err := json.Marshal(res.Content)
	if err != nil {
		content = []byte(fmt.Sprintf("%q", err.Error()))
	}
	return fmt.Sprintf("action=%s, content=%s", res.Action, content)
}

// Sampling and elicitation reach the client in one of two ways, chosen by
// the session's protocol era. Up to 2025-11-25 the server sends the client a
// request of its own while the call is running. From 2026-07-28 servers may
// not: the call ends with an input-required result naming what it needs, and
// the client calls again with the answers (SEP-2322), which arrive in
// req.Params.InputResponses under the key chosen here.
const inputKey = "input"

// modern reports whether the session speaks 2026-07-28 or later. A session
// with no initialize at all is a stateless, hence modern, one.
func modern(ss *mcp.ServerSession) bool {
	p := ss.InitializeParams()
	return p == nil || p.ProtocolVersion >= "2026-07-28"
}

// inputRequired is the result that asks a modern client for ir.
func inputRequired(ir mcp.InputRequest) *mcp.CallToolResult {
	return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{inputKey: ir}}
}

// sample asks the client's LLM to answer prompt and returns the reply's text
// (or its JSON when the reply is not text). When the answer has to come in a
// later call, it returns the result to send instead.
func sample(ctx context.Context, req *mcp.CallToolRequest, prompt string) (string, *mcp.CallToolResult, error) {
	params := &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: prompt}}},
		MaxTokens: 100,
	}
	var content []mcp.Content
	if modern(req.Session) {
		r, ok := req.Params.InputResponses[inputKey]
		if !ok {
			return "", inputRequired(params), nil
		}
		res, ok := r.(*mcp.CreateMessageWithToolsResult)
		if !ok {
			return "", nil, fmt.Errorf("input response is %T, want a sampling result", r)
		}
		content = res.Content
	} else {
		res, err := req.Session.CreateMessage(ctx, params)
		if err != nil {
			return "", nil, fmt.Errorf("sampling: %w", err)
		}
		content = []mcp.Content{res.Content}
	}
	if len(content) == 1 {
		if t, ok := content[0].(*mcp.TextContent); ok {
			return t.Text, nil, nil
		}
	}
	b, err := json.Marshal(content)
	if err != nil {
		return "", nil, fmt.Errorf("encoding sampled content: %w", err)
	}
	return string(b), nil, nil
}

// elicit asks the user through the client; like sample, it may return the
// result to send instead of an answer.
func elicit(ctx context.Context, req *mcp.CallToolRequest, params *mcp.ElicitParams) (*mcp.ElicitResult, *mcp.CallToolResult, error) {
	if modern(req.Session) {
		r, ok := req.Params.InputResponses[inputKey]
		if !ok {
			return nil, inputRequired(params), nil
		}
		res, ok := r.(*mcp.ElicitResult)
		if !ok {
			return nil, nil, fmt.Errorf("input response is %T, want an elicitation result", r)
		}
		return res, nil, nil
	}
	res, err := req.Session.Elicit(ctx, params)
	if err != nil {
		return nil, nil, fmt.Errorf("elicitation: %w", err)
	}
	return res, nil, nil
}

func addTestTools(s *mcp.Server, e env) {
	type echoArgs struct {
		Text string `json:"text" jsonschema:"the text to return"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Returns text unchanged as text content."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})

	type sizeArgs struct {
		Size int `json:"size" jsonschema:"number of bytes of text to return"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: fmt.Sprintf("Returns a text of exactly size bytes (at most %d).", maxBytes)},
		func(_ context.Context, _ *mcp.CallToolRequest, in sizeArgs) (*mcp.CallToolResult, any, error) {
			if in.Size < 0 || in.Size > maxBytes {
				return nil, nil, fmt.Errorf("size %d out of range [0, %d]", in.Size, maxBytes)
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: filler(in.Size)}}}, nil, nil
		})

	type sleepArgs struct {
		MS int `json:"ms" jsonschema:"milliseconds to sleep"`
	}
	// interrupted counts the sleeps a cancellation ended, so that a test
	// can see a cancellation reach the server.
	var interrupted atomic.Int64
	mcp.AddTool(s, &mcp.Tool{Name: "sleep", Description: "Sleeps ms milliseconds (at most 10 minutes); a cancellation ends it early with an error."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in sleepArgs) (*mcp.CallToolResult, any, error) {
			d := time.Duration(in.MS) * time.Millisecond
			if in.MS < 0 || d > maxDuration {
				return nil, nil, fmt.Errorf("ms %d out of range [0, %d]", in.MS, maxDuration.Milliseconds())
			}
			if err := pause(ctx, d); err != nil {
				interrupted.Add(1)
				return nil, nil, fmt.Errorf("sleep interrupted: %w", err)
			}
			return textResult("slept %d ms", in.MS), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "interrupted", Description: "Returns how many sleeps a cancellation has ended in this process."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			return textResult("%d", interrupted.Load()), nil, nil
		})

	type crashArgs struct {
		Code int `json:"code" jsonschema:"the process exit code"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "crash", Description: "Exits the whole process with code, without answering the call."},
		func(_ context.Context, _ *mcp.CallToolRequest, in crashArgs) (*mcp.CallToolResult, any, error) {
			e.exit(in.Code)
			// Only reached when exit is a test double.
			return nil, nil, errors.New("crash: exit returned")
		})

	type stderrArgs struct {
		Bytes int `json:"bytes" jsonschema:"number of bytes to write to stderr"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "stderr", Description: fmt.Sprintf("Writes exactly bytes bytes (at most %d) of text lines to stderr, then returns.", maxBytes)},
		func(_ context.Context, _ *mcp.CallToolRequest, in stderrArgs) (*mcp.CallToolResult, any, error) {
			if in.Bytes < 0 || in.Bytes > maxBytes {
				return nil, nil, fmt.Errorf("bytes %d out of range [0, %d]", in.Bytes, maxBytes)
			}
			n, err := io.WriteString(e.stderr, filler(in.Bytes))
			if err != nil {
				return nil, nil, fmt.Errorf("writing stderr: %w", err)
			}
			return textResult("wrote %d bytes to stderr", n), nil, nil
		})

	type garbageArgs struct {
		Line string `json:"line,omitempty" jsonschema:"the line to write (newlines become spaces); a fixed non-JSON text by default"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "garbage", Description: "Writes one non-JSON line on stdout between two messages, then returns."},
		func(_ context.Context, _ *mcp.CallToolRequest, in garbageArgs) (*mcp.CallToolResult, any, error) {
			line := in.Line
			if line == "" {
				line = defaultGarbageLine
			}
			if err := e.garbage(line); err != nil {
				return nil, nil, fmt.Errorf("writing garbage: %w", err)
			}
			return textResult("wrote a garbage line"), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "Returns the server's process id as decimal text."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			return textResult("%d", os.Getpid()), nil, nil
		})

	type sampleArgs struct {
		Prompt string `json:"prompt" jsonschema:"the prompt to sample"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "sample", Description: "Calls sampling/createMessage on the client with prompt and returns the reply text."},
		func(ctx context.Context, req *mcp.CallToolRequest, in sampleArgs) (*mcp.CallToolResult, any, error) {
			reply, pending, err := sample(ctx, req, in.Prompt)
			if pending != nil || err != nil {
				return pending, nil, err
			}
			return textResult("%s", reply), nil, nil
		})

	type elicitArgs struct {
		Message string `json:"message" jsonschema:"the message to show the user"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "elicit", Description: `Calls elicitation/create with message and a form of one optional string field "answer"; returns "action=<action>, content=<JSON>".`},
		func(ctx context.Context, req *mcp.CallToolRequest, in elicitArgs) (*mcp.CallToolResult, any, error) {
			schema := objectSchema(map[string]any{"answer": map[string]any{"type": "string", "description": "Your answer"}})
			res, pending, err := elicit(ctx, req, &mcp.ElicitParams{Message: in.Message, RequestedSchema: schema})
			if pending != nil || err != nil {
				return pending, nil, err
			}
			return textResult("%s", describeElicit(res)), nil, nil
		})

	type progressArgs struct {
		Steps int `json:"steps" jsonschema:"number of progress notifications to send"`
		MS    int `json:"ms,omitempty" jsonschema:"milliseconds to wait after each notification"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "progress", Description: fmt.Sprintf("Sends steps (at most %d) progress notifications i/steps for the call's progress token, then returns.", maxCount)},
		func(ctx context.Context, req *mcp.CallToolRequest, in progressArgs) (*mcp.CallToolResult, any, error) {
			if in.Steps < 0 || in.Steps > maxCount {
				return nil, nil, fmt.Errorf("steps %d out of range [0, %d]", in.Steps, maxCount)
			}
			if in.MS < 0 || time.Duration(in.MS)*time.Millisecond > maxDuration {
				return nil, nil, fmt.Errorf("ms %d out of range", in.MS)
			}
			token := req.Params.GetProgressToken()
			if token == nil {
				return nil, nil, errors.New("the call carries no progress token (_meta.progressToken)")
			}
			for i := 1; i <= in.Steps; i++ {
				p := &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(i), Total: float64(in.Steps), Message: fmt.Sprintf("step %d of %d", i, in.Steps)}
				if err := req.Session.NotifyProgress(ctx, p); err != nil {
					return nil, nil, fmt.Errorf("sending progress: %w", err)
				}
				if err := pause(ctx, time.Duration(in.MS)*time.Millisecond); err != nil {
					return nil, nil, err
				}
			}
			return textResult("sent %d progress notifications", in.Steps), nil, nil
		})

	type logArgs struct {
		Count int    `json:"count" jsonschema:"number of log notifications to send"`
		Level string `json:"level,omitempty" jsonschema:"log level of the messages (default info)"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "log", Description: fmt.Sprintf("Sends count (at most %d) notifications/message, then returns. Nothing is sent until the client has called logging/setLevel, and only at or above that level.", maxCount)},
		func(ctx context.Context, req *mcp.CallToolRequest, in logArgs) (*mcp.CallToolResult, any, error) {
			if in.Count < 0 || in.Count > maxCount {
				return nil, nil, fmt.Errorf("count %d out of range [0, %d]", in.Count, maxCount)
			}
			level := mcp.LoggingLevel(in.Level)
			if level == "" {
				level = "info"
			}
			for i := 1; i <= in.Count; i++ {
				p := &mcp.LoggingMessageParams{Level: level, Logger: "everything", Data: fmt.Sprintf("log message %d of %d", i, in.Count)}
				if err := req.Session.Log(ctx, p); err != nil {
					return nil, nil, fmt.Errorf("sending log notification: %w", err)
				}
			}
			return textResult("sent %d log notifications", in.Count), nil, nil
		})

	type touchArgs struct {
		URI string `json:"uri" jsonschema:"the resource URI that changed"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "touch", Description: "Sends notifications/resources/updated for uri to every session subscribed to it, then returns."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in touchArgs) (*mcp.CallToolResult, any, error) {
			if err := s.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: in.URI}); err != nil {
				return nil, nil, fmt.Errorf("notifying subscribers: %w", err)
			}
			return textResult("touched %s", in.URI), nil, nil
		})
}

// filler returns n bytes of printable text in lines of at most 64 bytes, the
// last of which ends with a newline when n > 0.
func filler(n int) string {
	const line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\n"
	var b strings.Builder
	b.Grow(n)
	for b.Len()+len(line) <= n {
		b.WriteString(line)
	}
	if rest := n - b.Len(); rest > 0 {
		b.WriteString(line[:rest-1])
		b.WriteByte('\n')
	}
	return b.String()
}

func addResources(s *mcp.Server, png []byte) {
	s.AddResource(&mcp.Resource{URI: "test://static-text", Name: "static-text", Description: "A fixed text resource.", MIMEType: "text/plain"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: staticText}}}, nil
		})
	s.AddResource(&mcp.Resource{URI: "test://static-binary", Name: "static-binary", Description: "A 1x1 red PNG.", MIMEType: "image/png"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "image/png", Blob: png}}}, nil
		})
	s.AddResource(&mcp.Resource{URI: watchedResourceURI, Name: "watched-resource", Description: "A text resource to subscribe to.", MIMEType: "text/plain"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "Watched resource content."}}}, nil
		})
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: templateURIPattern, Name: "template-data", Description: "JSON data for any id.", MIMEType: "application/json"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			id, ok := templateID(req.Params.URI)
			if !ok {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			}
			body, err := json.Marshal(map[string]any{"id": id, "templateTest": true, "data": "Data for ID: " + id})
			if err != nil {
				return nil, err
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "application/json", Text: string(body)}}}, nil
		})
}

// templateID extracts {id} from a URI of the form test://template/{id}/data.
func templateID(uri string) (string, bool) {
	rest, ok := strings.CutPrefix(uri, "test://template/")
	if !ok {
		return "", false
	}
	raw, ok := strings.CutSuffix(rest, "/data")
	if !ok || raw == "" || strings.Contains(raw, "/") {
		return "", false
	}
	id, err := url.PathUnescape(raw)
	if err != nil {
		return "", false
	}
	return id, true
}

func addPrompts(s *mcp.Server, png []byte) {
	user := func(c mcp.Content) *mcp.PromptMessage { return &mcp.PromptMessage{Role: "user", Content: c} }

	s.AddPrompt(&mcp.Prompt{Name: "test_simple_prompt", Description: "A prompt without arguments."},
		func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{user(&mcp.TextContent{Text: "This is a simple prompt for testing."})}}, nil
		})

	s.AddPrompt(&mcp.Prompt{Name: "test_prompt_with_arguments", Description: "A prompt that quotes its two arguments.", Arguments: []*mcp.PromptArgument{
		{Name: "arg1", Description: "First test argument", Required: true},
		{Name: "arg2", Description: "Second test argument", Required: true},
	}}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		a := req.Params.Arguments
		text := fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", a["arg1"], a["arg2"])
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{user(&mcp.TextContent{Text: text})}}, nil
	})

	s.AddPrompt(&mcp.Prompt{Name: "test_prompt_with_embedded_resource", Description: "A prompt that embeds a text resource under the given URI.", Arguments: []*mcp.PromptArgument{
		{Name: "resourceUri", Description: "URI of the resource to embed", Required: true},
	}}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		uri := req.Params.Arguments["resourceUri"]
		if uri == "" {
			return nil, errors.New("missing argument resourceUri")
		}
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{
			user(&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: uri, MIMEType: "text/plain", Text: promptResourceText}}),
			user(&mcp.TextContent{Text: "Please process the embedded resource above."}),
		}}, nil
	})

	s.AddPrompt(&mcp.Prompt{Name: "test_prompt_with_image", Description: "A prompt carrying a 1x1 red PNG."},
		func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{
				user(&mcp.ImageContent{Data: png, MIMEType: "image/png"}),
				user(&mcp.TextContent{Text: "Please analyze the image above."}),
			}}, nil
		})
}

// complete offers every word of completionWords that starts with the typed
// value, for any argument of any prompt or resource template.
func complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	prefix := req.Params.Argument.Value
	values := []string{}
	for _, w := range completionWords {
		if strings.HasPrefix(w, prefix) {
			values = append(values, w)
		}
	}
	slices.Sort(values)
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: values, Total: len(values)}}, nil
}

// parseBool reads an environment switch: "1", "true", "yes" (any case) are on.
func parseBool(s string) bool {
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return strings.EqualFold(s, "yes")
}
