// ts-client.mjs URL — the TypeScript SDK 2 client, pinned to protocol
// 2026-07-28, against an mcpwrap endpoint wrapping examples/everything: it
// must not fall back, and must complete calls that need input from it
// (sampling, elicitation, roots) through input_required rounds, which it
// answers with the handlers below. Exits non-zero on any difference.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const url = process.argv[2];
if (!url) {
  console.error('usage: node ts-client.mjs URL');
  process.exit(2);
}
const client = new Client(
  { name: 'mcpwrap-ts-client', version: '1' },
  {
    capabilities: { sampling: {}, elicitation: {}, roots: {} },
    versionNegotiation: { mode: { pin: '2026-07-28' } },
  },
);
client.setRequestHandler('sampling/createMessage', async () => ({
  role: 'assistant', model: 'ts', content: { type: 'text', text: 'sampled by ts' },
}));
client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { name: 'ts-user', answer: 'ts-answer' } }));
client.setRequestHandler('roots/list', async () => ({ roots: [{ uri: 'file:///ts/root', name: 'ts' }] }));

const failures = [];
const expect = (what, ok, got) => { if (!ok) failures.push(`${what}: ${JSON.stringify(got)}`); };
const text = (res) => res?.content?.[0]?.text ?? '';

await client.connect(new StreamableHTTPClientTransport(new URL(url)));
expect('negotiated version', client.getNegotiatedProtocolVersion() === '2026-07-28', client.getNegotiatedProtocolVersion());
const tools = await client.listTools();
expect('tools/list', tools.tools.some((t) => t.name === 'echo'), tools.tools.length);
let res = await client.callTool({ name: 'echo', arguments: { text: 'hello' } });
expect('echo', text(res) === 'hello', res);
res = await client.callTool({ name: 'sample', arguments: { prompt: 'p' } });
expect('sampling round trip', text(res) === 'sampled by ts', res);
res = await client.callTool({ name: 'elicit', arguments: { message: 'm' } });
expect('elicitation round trip', text(res).includes('ts-answer'), res);
res = await client.callTool({ name: 'test_input_required_result_multiple_inputs', arguments: {} });
expect('three inputs at once', ['ts-user', 'sampled by ts', 'file:///ts/root'].every((s) => text(res).includes(s)), res);
await client.close();

if (failures.length > 0) {
  for (const f of failures) console.log(`  FAIL ts-client: ${f}`);
  process.exit(1);
}
console.log('typescript sdk 2 client pinned to 2026-07-28: 7 checks passed');
