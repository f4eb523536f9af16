package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/errgroup"
)

// The fixtures of the conformance suite's 2026-07-28 scenarios. Each asks
// for input the way its era allows: an input-required result naming its
// inputs under fixed keys for a stateless client, requests to the client
// for a session that was initialized. The keys are the suite's.

// codeMissingCapability is the stateless era's MissingRequiredClientCapability.
const codeMissingCapability = -32021

// stateKey signs the requestState this server hands stateless clients, so a
// tampered one is refused.
var stateKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

func signState(payload string) string {
	m := hmac.New(sha256.New, stateKey)
	m.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// openState returns the payload of a state signState made, or false.
func openState(state string) (string, bool) {
	i := strings.LastIndexByte(state, '.')
	if i < 0 {
		return "", false
	}
	payload := state[:i]
	return payload, hmac.Equal([]byte(signState(payload)), []byte(state))
}

// gather returns an answer for every input in want. A stateless client
// brings its answers in the retry; until it has brought them all, missing
// names what to ask for. A session's client is asked directly, all at once.
func gather(ctx context.Context, ss *mcp.ServerSession, got mcp.InputResponseMap, want mcp.InputRequestMap) (answers map[string]any, missing mcp.InputRequestMap, err error) {
	answers = map[string]any{}
	if modern(ss) {
		missing = mcp.InputRequestMap{}
		for k, ir := range want {
			if r, ok := got[k]; ok {
				answers[k] = r
			} else {
				missing[k] = ir
			}
		}
		if len(missing) > 0 {
			return nil, missing, nil
		}
		return answers, nil, nil
	}
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	for k, ir := range want {
		g.Go(func() error {
			var r any
			var err error
			switch p := ir.(type) {
			case *mcp.ElicitParams:
				r, err = ss.Elicit(ctx, p)
			case *mcp.CreateMessageParams:
				r, err = ss.CreateMessage(ctx, p)
			case *mcp.ListRootsParams:
				r, err = ss.ListRoots(ctx, p)
			default:
				err = fmt.Errorf("unknown input request %T", ir)
			}
			if err != nil {
				return fmt.Errorf("asking the client for %s: %w", k, err)
			}
			mu.Lock()
			answers[k] = r
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return answers, nil, nil
}

func nameForm(message, field string) *mcp.ElicitParams {
	return &mcp.ElicitParams{
		Message:         message,
		RequestedSchema: objectSchema(map[string]any{field: map[string]any{"type": "string"}}, field),
	}
}

func samplingRequest(prompt string, maxTokens int64) *mcp.CreateMessageParams {
	return &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: prompt}}},
		MaxTokens: maxTokens,
	}
}

func answersText(prefix string, answers map[string]any) *mcp.CallToolResult {
	b, err := json.Marshal(answers)
	if err != nil {
		b = []byte(fmt.Sprintf("%q", err.Error()))
	}
	return textResult("%s %s", prefix, b)
}

// missingCapability is the protocol error for a tool that needs what the
// client did not declare.
func missingCapability(name string) error {
	data, _ := json.Marshal(map[string]any{"requiredCapabilities": map[string]any{name: map[string]any{}}})
	return &jsonrpc.Error{Code: codeMissingCapability, Message: "this tool needs the client's " + name + " capability", Data: data}
}

func addStatelessTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{Name: "test_missing_capability", Description: "Needs the client's sampling capability, and refuses a client without it (-32021)."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			if c := req.ClientCapabilities(); c == nil || c.Sampling == nil {
				return nil, nil, missingCapability("sampling")
			}
			return textResult("the client can sample"), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_streaming_elicitation", Description: "Asks the user for a name (elicitation) and greets them."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			if c := req.ClientCapabilities(); c == nil || c.Elicitation == nil {
				return nil, nil, missingCapability("elicitation")
			}
			answers, missing, err := gather(ctx, req.Session, req.Params.InputResponses, mcp.InputRequestMap{"name": nameForm("What is your name?", "name")})
			if missing != nil || err != nil {
				return &mcp.CallToolResult{InputRequests: missing}, nil, err
			}
			return answersText("Hello:", answers), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_logging_tool", Description: "Sends three log messages (info), then returns."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			for _, msg := range []string{"logging tool started", "logging tool working", "logging tool done"} {
				if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "everything", Data: msg}); err != nil {
					return nil, nil, fmt.Errorf("sending a log message: %w", err)
				}
			}
			return textResult("Logging tool completed"), nil, nil
		})

	// Each call adds or removes a tool (a prompt), which changes the list.
	var toolOn, promptOn atomic.Bool
	mcp.AddTool(s, &mcp.Tool{Name: "test_trigger_tool_change", Description: "Adds or removes the tool test_dynamic_tool, changing the tool list."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			if toolOn.CompareAndSwap(false, true) {
				mcp.AddTool(s, &mcp.Tool{Name: "test_dynamic_tool", Description: "Exists while toggled on."},
					func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
						return textResult("dynamic"), nil, nil
					})
				return textResult("added test_dynamic_tool"), nil, nil
			}
			toolOn.Store(false)
			s.RemoveTools("test_dynamic_tool")
			return textResult("removed test_dynamic_tool"), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "test_trigger_prompt_change", Description: "Adds or removes the prompt test_dynamic_prompt, changing the prompt list."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			if promptOn.CompareAndSwap(false, true) {
				s.AddPrompt(&mcp.Prompt{Name: "test_dynamic_prompt", Description: "Exists while toggled on."},
					func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
						return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "dynamic"}}}}, nil
					})
				return textResult("added test_dynamic_prompt"), nil, nil
			}
			promptOn.Store(false)
			s.RemovePrompts("test_dynamic_prompt")
			return textResult("removed test_dynamic_prompt"), nil, nil
		})

	// asking is a tool that needs the inputs want, and then answers with
	// what it got.
	asking := func(name, description string, want func() mcp.InputRequestMap, stateful bool) {
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: description},
			func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
				if stateful && modern(req.Session) && len(req.Params.InputResponses) > 0 {
					if _, ok := openState(req.Params.RequestState); !ok {
						return nil, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState failed its integrity check"}
					}
				}
				answers, missing, err := gather(ctx, req.Session, req.Params.InputResponses, want())
				if err != nil {
					return nil, nil, err
				}
				if missing != nil {
					res := &mcp.CallToolResult{InputRequests: missing}
					if stateful {
						res.RequestState = signState(name)
					}
					return res, nil, nil
				}
				return answersText("state-ok, got", answers), nil, nil
			})
	}
	asking("test_input_required_result_elicitation", "Asks for a name (key user_name).",
		func() mcp.InputRequestMap {
			return mcp.InputRequestMap{"user_name": nameForm("What is your name?", "name")}
		}, false)
	asking("test_input_required_result_sampling", "Asks the client's LLM a question (key capital_question).",
		func() mcp.InputRequestMap {
			return mcp.InputRequestMap{"capital_question": samplingRequest("What is the capital of France?", 100)}
		}, false)
	asking("test_input_required_result_list_roots", "Asks for the client's roots (key client_roots).",
		func() mcp.InputRequestMap { return mcp.InputRequestMap{"client_roots": &mcp.ListRootsParams{}} }, false)
	asking("test_input_required_result_request_state", "Asks for a confirmation, with a signed requestState.",
		func() mcp.InputRequestMap {
			return mcp.InputRequestMap{"confirm": &mcp.ElicitParams{
				Message:         "Please confirm",
				RequestedSchema: objectSchema(map[string]any{"ok": map[string]any{"type": "boolean"}}, "ok"),
			}}
		}, true)
	asking("test_input_required_result_tampered_state", "Asks for a confirmation, with a signed requestState it checks.",
		func() mcp.InputRequestMap {
			return mcp.InputRequestMap{"confirm": &mcp.ElicitParams{
				Message:         "Please confirm",
				RequestedSchema: objectSchema(map[string]any{"ok": map[string]any{"type": "boolean"}}, "ok"),
			}}
		}, true)
	asking("test_input_required_result_multiple_inputs", "Asks for a name, an LLM greeting and the roots at once.",
		func() mcp.InputRequestMap {
			return mcp.InputRequestMap{
				"user_name":    nameForm("What is your name?", "name"),
				"greeting":     samplingRequest("Generate a greeting", 50),
				"client_roots": &mcp.ListRootsParams{},
			}
		}, true)

	mcp.AddTool(s, &mcp.Tool{Name: "test_input_required_result_capabilities", Description: "Asks only for what the client declared it can give (sampling, elicitation, roots)."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			want := mcp.InputRequestMap{}
			if c := req.ClientCapabilities(); c != nil {
				if c.Sampling != nil {
					want["greeting"] = samplingRequest("Generate a greeting", 50)
				}
				if c.Elicitation != nil {
					want["user_name"] = nameForm("What is your name?", "name")
				}
				if c.RootsV2 != nil {
					want["client_roots"] = &mcp.ListRootsParams{}
				}
			}
			if len(want) == 0 {
				return textResult("the client declared nothing to ask for"), nil, nil
			}
			answers, missing, err := gather(ctx, req.Session, req.Params.InputResponses, want)
			if missing != nil || err != nil {
				return &mcp.CallToolResult{InputRequests: missing}, nil, err
			}
			return answersText("got", answers), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "test_input_required_result_multi_round", Description: "Asks for a name, then for a colour, in two rounds."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			step1 := mcp.InputRequestMap{"step1": nameForm("Step 1: What is your name?", "name")}
			step2 := mcp.InputRequestMap{"step2": nameForm("Step 2: What is your favorite color?", "color")}
			if !modern(req.Session) {
				first, _, err := gather(ctx, req.Session, nil, step1)
				if err != nil {
					return nil, nil, err
				}
				second, _, err := gather(ctx, req.Session, nil, step2)
				if err != nil {
					return nil, nil, err
				}
				return answersText("done:", map[string]any{"step1": first["step1"], "step2": second["step2"]}), nil, nil
			}
			round := "round1"
			if req.Params.RequestState != "" {
				p, ok := openState(req.Params.RequestState)
				if !ok {
					return nil, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState failed its integrity check"}
				}
				round = p
			}
			switch {
			case round == "round1" && req.Params.InputResponses["step1"] == nil:
				return &mcp.CallToolResult{InputRequests: step1, RequestState: signState("round1")}, nil, nil
			case round == "round1":
				return &mcp.CallToolResult{InputRequests: step2, RequestState: signState("round2")}, nil, nil
			case req.Params.InputResponses["step2"] == nil:
				return &mcp.CallToolResult{InputRequests: step2, RequestState: signState("round2")}, nil, nil
			}
			return answersText("done:", map[string]any{"step2": req.Params.InputResponses["step2"]}), nil, nil
		})

	// Its region is mirrored into the Mcp-Param-Region header (SEP-2243),
	// which the HTTP side in front of this server checks against the body.
	s.AddTool(&mcp.Tool{
		Name:        "test_x_mcp_header",
		Description: "Echoes its region, which clients mirror into the Mcp-Param-Region header.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{` +
			`"region":{"type":"string","description":"where to run","x-mcp-header":"Region"},` +
			`"query":{"type":"string","description":"what to run"}},"required":["region"]}`),
	}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var in struct {
			Region string `json:"region"`
		}
		if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
			return nil, fmt.Errorf("reading the arguments: %w", err)
		}
		return textResult("region %s", in.Region), nil
	})

	s.AddPrompt(&mcp.Prompt{Name: "test_input_required_result_prompt", Description: "Asks the user for context (key user_context), then quotes it."},
		func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			want := mcp.InputRequestMap{"user_context": nameForm("What context should the prompt use?", "context")}
			answers, missing, err := gather(ctx, req.Session, req.Params.InputResponses, want)
			if err != nil {
				return nil, err
			}
			if missing != nil {
				return &mcp.GetPromptResult{InputRequests: missing}, nil
			}
			b, _ := json.Marshal(answers)
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "Context: " + string(b)}}}}, nil
		})
}
