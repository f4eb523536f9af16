// ts-resume.mjs — the TypeScript MCP SDK's client makes one long call with
// progress through a connection the Go test cuts, and prints what it got.
//
//   MCP_URL=http://127.0.0.1:8080/mcp MCP_TOKEN=… STEPS=12 node ts-resume.mjs
//
// It prints "progress" once the third progress notification arrived (the
// test cuts the connection then), and at the end one JSON line: every
// progress value in the order received, and the call's result text.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const steps = Number(process.env.STEPS);
const transport = new StreamableHTTPClientTransport(new URL(process.env.MCP_URL), {
  requestInit: { headers: { Authorization: `Bearer ${process.env.MCP_TOKEN}` } },
  reconnectionOptions: { initialReconnectionDelay: 100, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1.5, maxRetries: 20 },
});
const client = new Client({ name: "mcpwrap-resume-test", version: "1" });
await client.connect(transport);

const progress = [];
const result = await client.callTool(
  { name: "progress", arguments: { steps, ms: 250 } },
  undefined,
  {
    timeout: 120000,
    resetTimeoutOnProgress: true,
    onprogress: (p) => {
      progress.push(p.progress);
      if (progress.length === 3) console.log("progress");
    },
  },
);
console.log(JSON.stringify({ progress, text: result.content?.[0]?.text ?? "" }));
await client.close();
