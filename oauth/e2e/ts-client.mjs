// ts-client.mjs — the TypeScript MCP SDK's OAuth client against a mcpwrap
// endpoint, as an app would use it: an OAuthClientProvider that registers
// (DCR), sends the person to the authorize URL, takes the code at its own
// loopback callback, then lists the tools and calls echo.
//
//   MCP_URL=http://127.0.0.1:8080/mcp BROWSER_URL=http://127.0.0.1:9999 node ts-client.mjs
//
// BROWSER_URL is the stand-in browser the Go test serves: GET
// BROWSER_URL/open?url=<authorize URL> signs in and follows the redirect to
// the callback. Prints one JSON line: the tools' names, echo's answer, and
// how many times the browser was opened.
import http from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const mcpURL = new URL(process.env.MCP_URL);
const browserURL = process.env.BROWSER_URL;

let resolveCode;
const code = new Promise((resolve) => (resolveCode = resolve));
const callback = http.createServer((req, res) => {
  const u = new URL(req.url, "http://127.0.0.1");
  res.end("signed in; you may close this window");
  if (u.pathname === "/callback") resolveCode(u.searchParams);
});
await new Promise((resolve) => callback.listen(0, "127.0.0.1", resolve));
const redirectUrl = `http://127.0.0.1:${callback.address().port}/callback`;

let signIns = 0;
let saved = {};
const provider = {
  get redirectUrl() {
    return redirectUrl;
  },
  get clientMetadata() {
    return {
      client_name: "mcpwrap e2e (TypeScript SDK)",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  state: () => "ts-state",
  clientInformation: () => saved.client,
  saveClientInformation: (info) => (saved.client = info),
  tokens: () => saved.tokens,
  saveTokens: (tokens) => (saved.tokens = tokens),
  saveCodeVerifier: (v) => (saved.verifier = v),
  codeVerifier: () => saved.verifier,
  redirectToAuthorization: async (url) => {
    signIns++;
    const res = await fetch(`${browserURL}/open?url=${encodeURIComponent(url.toString())}`);
    if (!res.ok) throw new Error(`stand-in browser: ${res.status} ${await res.text()}`);
  },
};

const client = new Client({ name: "mcpwrap-e2e-ts", version: "1.0.0" });
try {
  await client.connect(new StreamableHTTPClientTransport(mcpURL, { authProvider: provider }));
} catch (err) {
  if (!(err instanceof UnauthorizedError)) throw err;
  const params = await code;
  if (params.get("state") !== "ts-state") throw new Error(`callback state ${params.get("state")}`);
  const transport = new StreamableHTTPClientTransport(mcpURL, { authProvider: provider });
  await transport.finishAuth(params.get("code"));
  await client.connect(transport);
}
const tools = await client.listTools();
const result = await client.callTool({ name: "echo", arguments: { text: "from typescript" } });
console.log(
  JSON.stringify({
    tools: tools.tools.map((t) => t.name),
    text: result.content[0].text,
    signIns,
    refreshToken: Boolean(saved.tokens?.refresh_token),
  }),
);
await client.close();
callback.close();
