// The whole hiring story over both MCP surfaces, driven by the official TypeScript SDK's own
// Client: a hirer (user key, Bearer) on the hirer surface and the hired agent (its own agk_ key,
// X-API-Key) on the agent surface. Every check asserts; the last stdout line is a JSON report
// the Rust test asserts on too. Env: SDK_DIR, HIRER_URL, AGENT_URL, API_URL, KEY (the hirer,
// funded with 100.00), AGENT_DID / AGENT_KEY (an agent offering `code-review` at 10.00).
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';

const sdk = (p) => import(pathToFileURL(`${process.env.SDK_DIR}/dist/esm/${p}`).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const report = { checks: [] };
const check = (name) => report.checks.push(name);

async function connect(url, headers) {
  const client = new Client({ name: 'agentmarket-story', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

const text = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
async function call(client, name, args = {}) {
  const result = await client.callTool({ name, arguments: args });
  assert.notEqual(result.isError, true, `${name} failed: ${text(result)}`);
  return JSON.parse(result.content[0].text);
}
async function refused(client, name, args = {}) {
  const result = await client.callTool({ name, arguments: args });
  assert.equal(result.isError, true, `${name} should be refused: ${text(result)}`);
  return text(result);
}
async function rest(path, key) {
  const res = await fetch(`${process.env.API_URL}${path}`, { headers: { 'x-api-key': key } });
  const body = await res.json();
  assert.ok(res.ok, `${path}: ${res.status} ${JSON.stringify(body)}`);
  return body.data;
}

const hirer = await connect(process.env.HIRER_URL, { Authorization: `Bearer ${process.env.KEY}` });
const agent = await connect(process.env.AGENT_URL, { 'X-API-Key': process.env.AGENT_KEY });
check('connect');

const { tools } = await agent.listTools();
const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
assert.deepEqual(Object.keys(byName).sort(),
  ['add_hiring_message', 'report_hiring_failure', 'submit_hiring_result', 'task_emit_chunk']);
for (const t of tools) {
  assert.equal(t.inputSchema.type, 'object');
  assert.ok(t.inputSchema.required.includes('hiring_id'), `${t.name} takes hiring_id`);
  assert.ok(t.description.length > 80, `${t.name} is described`);
  assert.equal(t.annotations.readOnlyHint, false, `${t.name} writes`);
}
assert.equal(byName.report_hiring_failure.annotations.destructiveHint, true);
assert.ok(byName.submit_hiring_result.inputSchema.properties.artifacts, 'results take artifacts');
check('agent tools/list');

// Hire: the escrow is held at once.
const { agents } = await call(hirer, 'list_agents', { capability: 'code-review' });
assert.ok(agents.some((a) => a.did === process.env.AGENT_DID));
const hire = { agent_did: process.env.AGENT_DID, capability: 'code-review', task_description: 'Review PR #7', max_price: '10.00' };
const hired = await call(hirer, 'hire_agent', { ...hire, idempotency_key: 'story-1' });
const id = hired.hiring.id;
let balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['90.00', '10.00'], 'escrow held');
check('hire_agent');

// The agent asks; the hirer's wait returns with the question; the hirer answers.
const waiting = call(hirer, 'wait_for_hirings', { hiring_ids: [id], wait_seconds: 20 });
await new Promise((r) => setTimeout(r, 500));
const question = await call(agent, 'add_hiring_message', { hiring_id: id, question: 'Which branch?' });
assert.equal(question.kind, 'question');
const woke = await waiting;
assert.deepEqual(woke.changed, [id]);
const qid = woke.hirings[0].open_questions[0].question_id;
assert.equal(qid, question.id);
await call(hirer, 'answer_hiring_question', { hiring_id: id, question_id: qid, answer: 'main' });
const note = await call(agent, 'add_hiring_message', { hiring_id: id, message: 'On it.' });
assert.equal(note.kind, 'message');
assert.match(await refused(agent, 'add_hiring_message', { hiring_id: id, message: 'a', question: 'b' }), /VALIDATION_ERROR/);
check('question and answer');

// Two chunks, then the result with an artifact.
const first = await call(agent, 'task_emit_chunk', { hiring_id: id, content: 'Reading the diff…' });
const second = await call(agent, 'task_emit_chunk', { hiring_id: id, content: 'Found 2 issues', kind: 'progress' });
assert.deepEqual([first.seq, second.seq], [1, 2]);
assert.match(await refused(agent, 'task_emit_chunk', { hiring_id: id, content: 'x', kind: 'shout' }), /VALIDATION_ERROR[\s\S]*kind/);
const delivered = await call(agent, 'submit_hiring_result', {
  hiring_id: id,
  output: { summary: 'Two issues, both minor' },
  artifacts: [{ artifact_type: 'markdown', name: 'review.md', content: '# Review\n\nLooks good.\n' }],
});
assert.deepEqual([delivered.status, delivered.final], ['completed', true]);
check('chunks and result');

const status = await call(hirer, 'get_hiring_status', { hiring_id: id });
assert.equal(status.status, 'completed');
assert.deepEqual(status.task_output, { summary: 'Two issues, both minor' });
assert.deepEqual(status.stream.map((c) => [c.seq, c.kind, c.content]),
  [[1, 'text', 'Reading the diff…'], [2, 'progress', 'Found 2 issues']]);
assert.equal(status.stream_seq, 2);
const { artifacts } = await call(hirer, 'list_hiring_artifacts', { hiring_id: id });
assert.deepEqual(artifacts.map((a) => a.name), ['review.md']);
const file = await hirer.callTool({ name: 'download_artifact', arguments: { artifact_id: artifacts[0].id } });
assert.equal(file.content[0].text, '# Review\n\nLooks good.\n');
check('status, artifacts');

// Balances: the hirer paid 10.00 out of escrow; the agent's earning waits for the review window.
balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['90.00', '0.00']);
const earned = await rest('/ledger/balance', process.env.AGENT_KEY);
assert.equal(earned.pending, '10.00');
report.balances = { hirer: balance, agent: earned };
check('balances');

// A delivered hiring takes nothing more: refusals are tool errors with a hint, and a refused
// delivery attaches nothing.
assert.match(await refused(agent, 'task_emit_chunk', { hiring_id: id, content: 'late' }), /CONFLICT[\s\S]*hiring/);
const again = await refused(agent, 'submit_hiring_result', {
  hiring_id: id, output: 'again', artifacts: [{ artifact_type: 'text', name: 'late.txt', content: 'late' }],
});
assert.match(again, /CONFLICT/);
assert.equal((await call(hirer, 'list_hiring_artifacts', { hiring_id: id })).artifacts.length, 1, 'nothing attached');
assert.match(await refused(agent, 'submit_hiring_result', { hiring_id: id, output: null }), /VALIDATION_ERROR/);
assert.match(await refused(agent, 'task_emit_chunk', { hiring_id: 'no-such-hiring', content: 'x' }), /NOT_FOUND/);
check('refusals');

// A second hiring the agent gives up: the hirer is refunded.
const second_hire = await call(hirer, 'hire_agent', { ...hire, idempotency_key: 'story-2' });
const failed = await call(agent, 'report_hiring_failure', { hiring_id: second_hire.hiring.id, error: 'repository unreachable', reason: 'timeout' });
assert.equal(failed.status, 'failed');
assert.match(failed.failed_reason, /^timeout: repository unreachable/);
balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['90.00', '0.00'], 'the failed hiring is refunded');
check('report_hiring_failure');

// The agent surface is for agents: a user key without an agent is refused before MCP.
let userOnAgentSurface = null;
try {
  await connect(process.env.AGENT_URL, { Authorization: `Bearer ${process.env.KEY}` });
} catch (e) {
  userOnAgentSurface = { status: e?.code ?? null, message: String(e?.message ?? e) };
}
assert.ok(userOnAgentSurface, 'a user key cannot use the agent surface');
report.userOnAgentSurface = userOnAgentSurface;
check('agent surface needs an agent key');

await hirer.close();
await agent.close();
report.ok = true;
console.log(JSON.stringify(report));
