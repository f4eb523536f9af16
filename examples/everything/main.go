// Command everything is a stdio MCP server built with the official Go SDK. It
// is mcpwrap's demo and the fixture behind its tests and its conformance runs:
// mcpwrap starts it as a child and speaks JSON-RPC over its stdin and stdout.
// Logs go to stderr.
//
// # Conformance fixtures
//
// Tools (named as the MCP conformance suite calls them):
//
//	test_simple_text                   fixed text content
//	test_image_content                 a 1x1 red PNG (image/png)
//	test_audio_content                 10 ms of silence (audio/wav)
//	test_embedded_resource             an embedded text resource test://embedded-resource
//	test_multiple_content_types        text, image and an embedded JSON resource together
//	test_tool_with_logging             three info log notifications, 50 ms apart
//	test_tool_with_progress            progress 0, 50, 100 of 100, 50 ms apart (needs a progress token)
//	test_error_handling                a tool error (isError: true)
//	test_reconnection                  asks the transport to close the SSE stream if it can, waits 100 ms, returns
//	test_sampling {prompt}             sampling/createMessage; returns "LLM response: <reply>"
//	test_elicitation {message}         elicits username and email; returns the action and content
//	test_elicitation_sep1034_defaults  elicits a form whose fields all carry defaults (SEP-1034)
//	test_elicitation_sep1330_enums     elicits a form with the five enum shapes of SEP-1330
//	json_schema_2020_12_tool           input schema using $schema, $defs, $anchor, allOf/anyOf, if/then/else
//
// For the 2026-07-28 scenarios (stateless.go): test_missing_capability (-32021
// without the sampling capability), test_streaming_elicitation,
// test_logging_tool, test_trigger_tool_change and test_trigger_prompt_change
// (each call adds or removes test_dynamic_tool / test_dynamic_prompt), and
// test_input_required_result_{elicitation, sampling, list_roots,
// request_state, tampered_state, multiple_inputs, capabilities, multi_round}
// with the prompt test_input_required_result_prompt, which ask for input
// under the suite's keys (a signed requestState where the suite wants one),
// and test_x_mcp_header, whose region argument clients mirror into the
// Mcp-Param-Region header.
//
// Resources: test://static-text (text/plain), test://static-binary (a PNG blob),
// test://watched-resource (text/plain, for subscriptions) and the template
// test://template/{id}/data (JSON mentioning the id). Subscribe and
// unsubscribe are accepted for any URI.
//
// Prompts: test_simple_prompt, test_prompt_with_arguments {arg1, arg2},
// test_prompt_with_embedded_resource {resourceUri}, test_prompt_with_image.
//
// Also logging/setLevel, and completion/complete (prefix matches from a small
// word list for any argument).
//
// # Tools for mcpwrap's tests
//
//	echo {text}          returns text unchanged (large-request tests)
//	big {size}           returns a text of exactly size bytes, at most 64 MiB (large-response tests)
//	sleep {ms}           sleeps, at most 10 minutes; a cancellation ends it early
//	interrupted          how many sleeps a cancellation ended in this process
//	crash {code}         exits the process with code mid-request, never answering
//	stderr {bytes}       writes exactly bytes bytes of text lines to stderr, at most 64 MiB
//	garbage {line?}      writes one non-JSON line on stdout between two messages
//	pid                  returns the server's process id
//	sample {prompt}      sampling/createMessage; returns the reply text
//	elicit {message}     elicitation/create with one optional string field "answer";
//	                     returns "action=<action>, content=<JSON>"
//	progress {steps, ms?}  sends steps progress notifications (1..steps of steps) for the
//	                     call's progress token, ms apart, then returns; fails without a token
//	log {count, level?}  sends count notifications/message (default level info), only at or
//	                     above the client's level: like every SDK server it sends nothing
//	                     before logging/setLevel (2026-07-28: the level in the request's _meta)
//	touch {uri}          sends notifications/resources/updated for uri to its subscribers
//
// Sampling and elicitation (sample, elicit, test_sampling, test_elicitation*)
// are requests to the client up to protocol 2025-11-25; a 2026-07-28 client
// gets them as an input-required result and calls again with the answers
// (SEP-2322).
//
// # Environment
//
//	EVERYTHING_SPAWN_GRANDCHILD=1  start "sleep 1000" in the background, in this process's
//	                               group and sharing its stdout and stderr, and log its pid
//	                               on stderr as "grandchild pid=N" (process-group tests)
//	EVERYTHING_IGNORE_SIGTERM=1    ignore SIGTERM (kill-escalation tests); the grandchild,
//	                               started first, still dies of SIGTERM
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdin, os.Stdout, os.Stderr, os.Exit); err != nil {
		fmt.Fprintf(os.Stderr, "everything: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// run serves MCP on stdin and stdout until the client closes stdin or ctx
// ends. exit is what the crash tool calls.
func run(ctx context.Context, getenv func(string) string, stdin io.ReadCloser, stdout io.Writer, stderr io.Writer, exit func(int)) error {
	if parseBool(getenv("EVERYTHING_SPAWN_GRANDCHILD")) {
		// Deliberately never waited for: it must outlive us unless whoever
		// started us kills our whole process group.
		gc := exec.Command("sleep", "1000")
		gc.Stdout, gc.Stderr = stdout, stderr
		if err := gc.Start(); err != nil {
			return fmt.Errorf("starting grandchild: %w", err)
		}
		fmt.Fprintf(stderr, "everything: grandchild pid=%d\n", gc.Process.Pid)
	}
	if parseBool(getenv("EVERYTHING_IGNORE_SIGTERM")) {
		signal.Ignore(syscall.SIGTERM)
		fmt.Fprintln(stderr, "everything: ignoring SIGTERM")
	}

	out := newLineWriter(stdout)
	s := newServer(env{stderr: stderr, exit: exit, garbage: out.Inject})
	fmt.Fprintf(stderr, "everything: serving MCP on stdio, pid=%d\n", os.Getpid())
	err := s.Run(ctx, &mcp.IOTransport{Reader: stdin, Writer: out})
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("serving: %w", err)
}
