// The whole hiring story over both MCP surfaces, driven by the official TypeScript SDK's own
// Client: a hirer (user key, Bearer) on the hirer surface and the hired agent (its own agk_ key,
// X-API-Key) on the agent surface. Every check asserts; the last stdout line is a JSON report
// the Rust test asserts on too. Env: SDK_DIR, HIRER_URL, AGENT_URL (or BALANCE), TRANSPORT (`sse`
// for the 2024-11-05 transport), API_URL, KEY (the hirer,
// funded with 100.00), AGENT_DID / AGENT_KEY (an agent offering `code-review` at 10.00).
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';

const sdk = (p) => import(pathToFileURL(`${process.env.SDK_DIR}/dist/esm/${p}`).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { SSEClientTransport } = await sdk('client/sse.js');
const { ResourceUpdatedNotificationSchema } = await sdk('types.js');

const report = { checks: [], timings: {} };
const check = (name) => report.checks.push(name);

// With BALANCE (server base URLs, comma-separated) the clients talk to a load balancer without
// sticky routing: each session's requests go to the servers in turn.
let [hirerUrl, agentUrl] = [process.env.HIRER_URL, process.env.AGENT_URL];
let balancer = null;
const served = {};
if (process.env.BALANCE) {
  const http = await import('node:http');
  const upstreams = process.env.BALANCE.split(',');
  const turns = {};
  balancer = http.createServer((req, res) => {
    const session = req.headers['mcp-session-id'] ?? 'new';
    turns[session] = (turns[session] ?? -1) + 1;
    const upstream = new URL(upstreams[turns[session] % upstreams.length]);
    (served[session] ??= new Set()).add(upstream.origin);
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });
  await new Promise((r) => balancer.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${balancer.address().port}`;
  [hirerUrl, agentUrl] = [`${base}/mcp/hirer`, `${base}/mcp`];
}

async function connect(url, headers) {
  const client = new Client({ name: 'agentmarket-story', version: '1.0.0' });
  // TRANSPORT=sse: the 2024-11-05 transport at <surface>/sse; else Streamable HTTP.
  const transport = process.env.TRANSPORT === 'sse'
    ? new SSEClientTransport(new URL(`${url}/sse`), { requestInit: { headers } })
    : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  client.session = transport.sessionId ?? transport._endpoint?.pathname.split('/').pop();
  // The server's pings, as they arrive (the SDK's Client answers them by itself).
  client.pings = [];
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if (message.method === 'ping') client.pings.push({ id: message.id, at: Date.now() });
    deliver?.(message, extra);
  };
  // `notifications/resources/updated` as they arrive, and a wait for the next one about a URI.
  client.updates = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => client.updates.push(n.params.uri));
  client.nextUpdate = async (uri, what) => {
    const from = client.updates.length;
    const started = Date.now();
    const deadline = started + 10000;
    while (!client.updates.slice(from).includes(uri)) {
      assert.ok(Date.now() < deadline, `no notification for ${uri} (${what}); got ${JSON.stringify(client.updates)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // How long after the action started (to about 20 ms): reported, never asserted.
    report.timings[what] = Date.now() - started;
  };
  return client;
}
async function until(condition, what) {
  const deadline = Date.now() + 10000;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
// Starts waiting for a notification now (before the action that causes it).
const expectUpdate = (client, uri, what) => client.nextUpdate(uri, what);
const readJson = async (client, uri) => JSON.parse((await client.readResource({ uri })).contents[0].text);

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

const hirer = await connect(hirerUrl, { Authorization: `Bearer ${process.env.KEY}` });
const agent = await connect(agentUrl, { 'X-API-Key': process.env.AGENT_KEY });
assert.ok(hirer.session && agent.session, 'each client holds a session');
report.transport = process.env.TRANSPORT ?? 'streamable';
assert.equal(hirer.getServerCapabilities().resources.subscribe, true);
assert.equal(agent.getServerCapabilities().resources.subscribe, true);
check('connect');

// The agent listens for hirings.
const { resources: agentResources } = await agent.listResources();
assert.deepEqual(agentResources.map((r) => r.uri), ['hiring://pending']);
const { resourceTemplates } = await agent.listResourceTemplates();
assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate), ['hiring://{id}/status']);
assert.deepEqual(await readJson(agent, 'hiring://pending'), { hirings: [] });
await agent.subscribeResource({ uri: 'hiring://pending' });
await assert.rejects(agent.readResource({ uri: 'hirings://active' }), /-32002|not found/i, 'a hirer resource is not on the agent surface');
check('agent subscribes hiring://pending');

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
await hirer.subscribeResource({ uri: 'hirings://active' });
let arrived = expectUpdate(agent, 'hiring://pending', 'a hiring arrives');
const hireStarted = Date.now();
const hired = await call(hirer, 'hire_agent', { ...hire, idempotency_key: 'story-1' });
let balance = await call(hirer, 'check_balance');
assert.deepEqual([balance.available, balance.escrow], ['90.00', '10.00'], 'escrow held');
check('hire_agent');

// The agent hears of it and finds it in hiring://pending.
await arrived;
const pending = await readJson(agent, 'hiring://pending');
assert.equal(pending.hirings.length, 1);
const id = pending.hirings[0].id;
assert.equal(id, hired.hiring.id);
assert.equal(pending.hirings[0].task_description, 'Review PR #7');
check('the agent is notified');

// The availability probe pings the agent over its session (it has no callback URL); the SDK's
// Client answers, and the hiring starts.
await until(async () => (await call(hirer, 'get_hiring_status', { hiring_id: id })).status === 'in_progress',
  'the probe finds the agent available');
assert.ok(agent.pings.length >= 1, 'the agent was pinged');
assert.ok(agent.pings.every((p) => String(p.id).startsWith('agentmarket-ping:')), JSON.stringify(agent.pings));
report.pings = agent.pings.length;
report.timings['the ping reaches the agent'] = agent.pings[0].at - hireStarted;
check('the availability ping is answered');

// The hirer follows the hiring: hirings://active lists it, hiring://{id}/status shows it.
const active = await readJson(hirer, 'hirings://active');
assert.deepEqual(active.hirings.map((h) => h.id), [id]);
const { resources: hirerResources } = await hirer.listResources();
assert.deepEqual(hirerResources.map((r) => r.uri), ['hirings://active', `hiring://${id}/status`]);
assert.equal((await readJson(hirer, `hiring://${id}/status`)).id, id);
await hirer.subscribeResource({ uri: `hiring://${id}/status` });
await agent.subscribeResource({ uri: `hiring://${id}/status` });
await assert.rejects(hirer.subscribeResource({ uri: 'hiring://no-such-hiring/status' }), /NOT_FOUND/);
check('the hirer subscribes');

// The agent asks; the hirer's wait returns with the question; the hirer answers.
const waiting = call(hirer, 'wait_for_hirings', { hiring_ids: [id], wait_seconds: 20 });
await new Promise((r) => setTimeout(r, 500));
let asked = expectUpdate(hirer, `hiring://${id}/status`, 'a question is asked');
const question = await call(agent, 'add_hiring_message', { hiring_id: id, question: 'Which branch?' });
assert.equal(question.kind, 'question');
const woke = await waiting;
assert.deepEqual(woke.changed, [id]);
const qid = woke.hirings[0].open_questions[0].question_id;
assert.equal(qid, question.id);
await asked;
const answeredUpdate = expectUpdate(agent, `hiring://${id}/status`, 'the answer');
await call(hirer, 'answer_hiring_question', { hiring_id: id, question_id: qid, answer: 'main' });
await answeredUpdate;
const seenByAgent = await readJson(agent, `hiring://${id}/status`);
assert.deepEqual(seenByAgent.messages.filter((m) => m.kind === 'answer').map((m) => [m.content, m.reply_to_id]), [['main', qid]]);
const note = await call(agent, 'add_hiring_message', { hiring_id: id, message: 'On it.' });
assert.equal(note.kind, 'message');
assert.match(await refused(agent, 'add_hiring_message', { hiring_id: id, message: 'a', question: 'b' }), /VALIDATION_ERROR/);
check('question and answer');

// Two chunks, then the result with an artifact.
const first = await call(agent, 'task_emit_chunk', { hiring_id: id, content: 'Reading the diff…' });
const second = await call(agent, 'task_emit_chunk', { hiring_id: id, content: 'Found 2 issues', kind: 'progress' });
assert.deepEqual([first.seq, second.seq], [1, 2]);
assert.match(await refused(agent, 'task_emit_chunk', { hiring_id: id, content: 'x', kind: 'shout' }), /VALIDATION_ERROR[\s\S]*kind/);
const deliveredUpdate = expectUpdate(hirer, `hiring://${id}/status`, 'the result is delivered');
const delivered = await call(agent, 'submit_hiring_result', {
  hiring_id: id,
  output: { summary: 'Two issues, both minor' },
  artifacts: [{ artifact_type: 'markdown', name: 'review.md', content: '# Review\n\nLooks good.\n' }],
});
assert.deepEqual([delivered.status, delivered.final], ['completed', true]);
await deliveredUpdate;
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

// A third hiring the hirer cancels: both sides hear of it.
arrived = expectUpdate(agent, 'hiring://pending', 'another hiring arrives');
const third = await call(hirer, 'hire_agent', { ...hire, idempotency_key: 'story-3' });
await arrived;
const cancelledForHirer = expectUpdate(hirer, 'hirings://active', 'the hiring is cancelled');
const cancelledForAgent = expectUpdate(agent, 'hiring://pending', 'the hiring is cancelled');
assert.equal((await call(hirer, 'cancel_hiring', { hiring_id: third.hiring.id })).status, 'cancelled');
await cancelledForHirer;
await cancelledForAgent;
assert.deepEqual(await readJson(agent, 'hiring://pending'), { hirings: [] });
assert.deepEqual((await readJson(hirer, 'hirings://active')).hirings, []);
check('cancel_hiring is heard');

// Unsubscribed: no more notifications about that hiring.
await hirer.unsubscribeResource({ uri: `hiring://${id}/status` });
await hirer.unsubscribeResource({ uri: 'hirings://active' });
await new Promise((r) => setTimeout(r, 1000)); // notifications sent before that land first
const quietFrom = hirer.updates.length;
await call(hirer, 'hire_agent', { ...hire, idempotency_key: 'story-4' });
await new Promise((r) => setTimeout(r, 1500));
assert.deepEqual(hirer.updates.slice(quietFrom), [], 'nothing after unsubscribing');
check('unsubscribe');

// The agent surface is for agents: a user key without an agent is refused before MCP.
let userOnAgentSurface = null;
try {
  await connect(agentUrl, { Authorization: `Bearer ${process.env.KEY}` });
} catch (e) {
  userOnAgentSurface = { status: e?.code ?? null, message: String(e?.message ?? e) };
}
assert.ok(userOnAgentSurface, 'a user key cannot use the agent surface');
report.userOnAgentSurface = userOnAgentSurface;
check('agent surface needs an agent key');

const sessions = [hirer.session, agent.session];
await hirer.close();
await agent.close();
if (balancer) {
  report.servedBy = sessions.map((s) => [...(served[s] ?? [])].sort());
  balancer.closeAllConnections();
  balancer.close();
}
report.ok = true;
console.log(JSON.stringify(report));
