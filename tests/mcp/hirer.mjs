// Drives agentmarket's hirer MCP surface with the official TypeScript SDK's own Client over
// StreamableHTTPClientTransport, or SSEClientTransport with TRANSPORT=sse (Bearer keys). Every check asserts; the last stdout line is a
// JSON report the Rust test asserts on too. Env: SDK_DIR (the installed package), MCP_URL,
// KEY (full rights, funded), SCOPED_KEY (no hire:create), CAPPED_KEY (max_price_per_hire below
// the price), AGENT_DID (an agent offering `code-review` at 10.00), AGENT_KEY (that agent's key,
// which acts over REST at API_URL: asks a question, attaches artifacts).
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';

const sdk = (p) => import(pathToFileURL(`${process.env.SDK_DIR}/dist/esm/${p}`).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { SSEClientTransport } = await sdk('client/sse.js');

const url = new URL(process.env.MCP_URL);
const report = { checks: [] };
const check = (name) => report.checks.push(name);

async function connect(key) {
  const client = new Client({ name: 'agentmarket-test', version: '1.0.0' });
  const requestInit = { headers: { Authorization: `Bearer ${key}` } };
  // TRANSPORT=sse: the 2024-11-05 transport at /mcp/hirer/sse.
  const transport = process.env.TRANSPORT === 'sse'
    ? new SSEClientTransport(new URL(`${url.href}/sse`), { requestInit })
    : new StreamableHTTPClientTransport(url, { requestInit });
  await client.connect(transport);
  return client;
}

const text = (result) => result.content.map((c) => c.text).join('\n');
async function call(client, name, args = {}) {
  const result = await client.callTool({ name, arguments: args });
  assert.notEqual(result.isError, true, `${name} failed: ${text(result)}`);
  return JSON.parse(text(result));
}
async function refused(client, name, args = {}) {
  const result = await client.callTool({ name, arguments: args });
  assert.equal(result.isError, true, `${name} should be refused: ${text(result)}`);
  return text(result);
}

const hirer = await connect(process.env.KEY);
report.protocolVersion = hirer.transport.protocolVersion ?? null;
check('initialize');

const { tools } = await hirer.listTools();
report.tools = tools.map((t) => t.name).sort();
const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
for (const t of tools) {
  assert.equal(t.inputSchema.type, 'object', `${t.name} has an object input schema`);
  assert.ok(t.description && t.description.length > 80, `${t.name} has a description an assistant can act on`);
  assert.ok(t.annotations, `${t.name} has annotations`);
}
for (const name of ['list_agents', 'get_hiring_status', 'list_my_hirings', 'check_balance', 'wait_for_hirings',
  'list_hiring_artifacts', 'download_artifact', 'get_github_token_status']) {
  assert.equal(byName[name].annotations.readOnlyHint, true, `${name} is read-only`);
}
for (const name of ['hire_agent', 'cancel_hiring', 'generate_deposit_address', 'answer_hiring_question',
  'set_github_token', 'clear_github_token']) {
  assert.equal(byName[name].annotations.readOnlyHint, false, `${name} writes`);
}
assert.equal(byName.cancel_hiring.annotations.destructiveHint, true);
assert.equal(byName.clear_github_token.annotations.destructiveHint, true);
assert.equal(byName.hire_agent.annotations.destructiveHint, false);
const hireSchema = byName.hire_agent.inputSchema;
for (const arg of ['agent_did', 'capability', 'task_description', 'max_price']) {
  assert.ok(hireSchema.required.includes(arg), `hire_agent requires ${arg}`);
}
for (const arg of ['idempotency_key', 'delivery_mode', 'repo_url']) {
  assert.ok(hireSchema.properties[arg], `hire_agent takes ${arg}`);
  assert.ok(!hireSchema.required.includes(arg), `${arg} is optional`);
}
check('tools/list');

const { agents } = await call(hirer, 'list_agents', { capability: 'code-review' });
assert.ok(agents.some((a) => a.did === process.env.AGENT_DID), 'list_agents finds the agent');
check('list_agents');

let balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['100.00', '0.00']);

const hire = {
  agent_did: process.env.AGENT_DID,
  capability: 'code-review',
  task_description: 'Review the pull request',
  max_price: '10.00',
  idempotency_key: 'mcp-test-hire-1',
};
const hired = await call(hirer, 'hire_agent', hire);
const id = hired.hiring.id;
assert.equal(hired.replayed, false);
assert.equal(hired.hiring.price, '10.00');
assert.equal(hired.hiring.final, false);
balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['90.00', '10.00'], 'the escrow is held');
check('hire_agent');

const again = await call(hirer, 'hire_agent', hire);
assert.equal(again.hiring.id, id, 'the same idempotency_key returns the same hiring');
assert.equal(again.replayed, true);
balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['90.00', '10.00'], 'held once');
check('hire_agent replay');

const status = await call(hirer, 'get_hiring_status', { hiring_id: id });
assert.equal(status.id, id);
assert.equal(status.agent_did, process.env.AGENT_DID);
const mine = await call(hirer, 'list_my_hirings', {});
assert.equal(mine.total, 1);
assert.equal(mine.hirings[0].id, id);
check('get_hiring_status, list_my_hirings');

// The agent acts over REST with its own key.
async function agentPost(path, body) {
  const res = await fetch(`${process.env.API_URL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': process.env.AGENT_KEY },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${path}: ${res.status} ${text}`);
  return JSON.parse(text).data;
}
const quiet = await call(hirer, 'wait_for_hirings', { hiring_ids: [id], wait_seconds: 1 });
assert.deepEqual([quiet.changed, quiet.timed_out], [[], true], 'nothing new: the wait times out');
const started = Date.now();
const waiting = call(hirer, 'wait_for_hirings', { hiring_ids: [id], wait_seconds: 20 });
await new Promise((r) => setTimeout(r, 1500));
const question = await agentPost(`/hirings/${id}/messages`, { content: 'Which branch?', kind: 'question' });
const woke = await waiting;
assert.deepEqual(woke.changed, [id], 'the question ends the wait');
assert.ok(Date.now() - started < 8000, `it returns as soon as the question is asked (${Date.now() - started} ms)`);
const qid = woke.hirings[0].open_questions[0].question_id;
assert.equal(qid, question.id);
const known = await call(hirer, 'wait_for_hirings', { hiring_ids: [id], known_question_ids: [qid], wait_seconds: 1 });
assert.equal(known.timed_out, true, 'a known question does not end the wait');
const answered = await call(hirer, 'answer_hiring_question', { hiring_id: id, question_id: qid, answer: 'main' });
assert.deepEqual([answered.kind, answered.reply_to_id], ['answer', qid]);
assert.equal((await call(hirer, 'get_hiring_status', { hiring_id: id })).open_questions.length, 0, 'answered');
check('wait_for_hirings, answer_hiring_question');

await agentPost(`/hirings/${id}/artifacts`, {
  artifacts: [
    { artifact_type: 'markdown', name: 'review.md', content: '# Looks good\n', content_type: 'text/markdown' },
    { artifact_type: 'file', name: 'blob.bin', content: 'AAEC//4=', encoding: 'base64', content_type: 'application/octet-stream' },
  ],
});
const { artifacts } = await call(hirer, 'list_hiring_artifacts', { hiring_id: id });
assert.deepEqual(artifacts.map((a) => a.name).sort(), ['blob.bin', 'review.md']);
const md = artifacts.find((a) => a.name === 'review.md');
const whole = await hirer.callTool({ name: 'download_artifact', arguments: { artifact_id: md.id } });
assert.notEqual(whole.isError, true);
assert.equal(whole.content[0].text, '# Looks good\n', 'text inline');
const cut = await hirer.callTool({ name: 'download_artifact', arguments: { artifact_id: md.id, max_bytes: 4 } });
assert.equal(cut.content[0].text, '# Lo');
assert.match(cut.content[1].text, /truncated: 4 of 13 bytes/);
const blob = artifacts.find((a) => a.name === 'blob.bin');
const bin = await hirer.callTool({ name: 'download_artifact', arguments: { artifact_id: blob.id } });
assert.equal(bin.content[0].type, 'resource', 'binary as an embedded resource');
assert.deepEqual([bin.content[0].resource.blob, bin.content[0].resource.mimeType], ['AAEC//4=', 'application/octet-stream']);
check('list_hiring_artifacts, download_artifact');

const cancelled = await call(hirer, 'cancel_hiring', { hiring_id: id });
assert.equal(cancelled.final, true);
balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['100.00', '0.00'], 'the escrow is refunded');
report.balanceAfterCancel = balance;
const twice = await refused(hirer, 'cancel_hiring', { hiring_id: id });
assert.match(twice, /get_hiring_status/, 'a refusal says what to do');
check('cancel_hiring');

assert.match(await refused(hirer, 'get_hiring_status', { hiring_id: 'no-such-hiring' }), /NOT_FOUND/);
assert.match(await refused(hirer, 'hire_agent', { ...hire, max_price: 'ten', idempotency_key: 'x' }), /INVALID_AMOUNT|VALIDATION_ERROR/);
const deposit = await refused(hirer, 'generate_deposit_address', { amount: '10.00' });
assert.match(deposit, /PAYMENT_PROVIDER_NOT_CONFIGURED/);
report.depositRefusal = deposit;
check('refusals');

const scoped = await connect(process.env.SCOPED_KEY);
const noScope = await refused(scoped, 'hire_agent', { ...hire, idempotency_key: 'scoped' });
assert.match(noScope, /FORBIDDEN/);
assert.match(noScope, /hire:create/);
report.scopeRefusal = noScope;
assert.equal((await call(scoped, 'check_balance')).available, '100.00', 'the scoped key still reads');
check('scoped key');

const capped = await connect(process.env.CAPPED_KEY);
const overCap = await refused(capped, 'hire_agent', { ...hire, idempotency_key: 'capped' });
assert.match(overCap, /PRICE_ABOVE_MAX/);
report.capRefusal = overCap;
balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['100.00', '0.00'], 'refusals hold nothing');
check('capped key');

const token = process.env.GITHUB_TOKEN;
assert.deepEqual(await call(hirer, 'get_github_token_status'), { set: false, last4: null, set_at: null });
const setResult = await hirer.callTool({ name: 'set_github_token', arguments: { token } });
assert.notEqual(setResult.isError, true, text(setResult));
assert.ok(!JSON.stringify(setResult).includes(token), 'the token is never returned');
const tokenStatus = await call(hirer, 'get_github_token_status');
assert.deepEqual([tokenStatus.set, tokenStatus.last4], [true, token.slice(-4)]);
assert.ok(!JSON.stringify(tokenStatus).includes(token));
assert.match(await refused(scoped, 'set_github_token', { token }), /FORBIDDEN.*account:write/);
assert.match(await refused(hirer, 'set_github_token', { token: 'no way' }), /VALIDATION_ERROR/);
assert.equal((await call(hirer, 'clear_github_token')).set, false);
assert.equal((await call(hirer, 'get_github_token_status')).set, false);
await call(hirer, 'set_github_token', { token }); // left stored: the Rust test looks for it at rest
check('github token');

let badKey = null;
try {
  await connect('ap_not_a_real_key_0000000000000000');
} catch (e) {
  badKey = { status: e?.code ?? null, message: String(e?.message ?? e) };
}
assert.ok(badKey, 'a bad key cannot connect');
report.badKey = badKey;
check('bad key');

for (const c of [hirer, scoped, capped]) await c.close();
report.ok = true;
console.log(JSON.stringify(report));
