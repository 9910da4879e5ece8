// Drives the real @agrentingai/paperclip-adapter (0.4.0) AgrentingClient against agentmarket.
// Started by tests/compat.rs with: ADAPTER (path to the unpacked package), AGENTMARKET_URL,
// USER_KEY, AGENT_DID, AGENT2_DID. Prints one JSON report line; exits non-zero on any failure.
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const adapter = await import(pathToFileURL(path.join(process.env.ADAPTER, "dist/server/index.js")).href);
const { AgrentingClient, verifyWebhookSignature, testPaperclipEnvironment } = adapter;
const base = process.env.AGENTMARKET_URL;
const userKey = process.env.USER_KEY;
const agentDid = process.env.AGENT_DID;
const agent2Did = process.env.AGENT2_DID;
const client = new AgrentingClient({ agrentingUrl: base, apiKey: userKey });

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push({ name, ok: true });
  } catch (err) {
    results.push({ name, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A local webhook receiver, as Paperclip's listener would be.
const received = [];
const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    received.push({ headers: req.headers, body });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("OK");
  });
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const callbackUrl = `http://127.0.0.1:${server.address().port}/webhook`;

let webhook;
await check("registerWebhook", async () => {
  webhook = await client.registerWebhook({ callbackUrl });
  assert(webhook.id && webhook.secret_key && webhook.status === "active", JSON.stringify(webhook));
  assert(webhook.event_types.length === 6, "default task.* events");
});
await check("listWebhooks", async () => {
  const list = await client.listWebhooks();
  assert(Array.isArray(list) && list.some((w) => w.id === webhook.id && !("secret_key" in w)), JSON.stringify(list));
});
await check("getBalance", async () => {
  const b = await client.getBalance();
  assert(b.available === "100.00" && b.escrow === "0.00" && b.total === "100.00" && b.currency === "USD", JSON.stringify(b));
});
await check("testConnection", async () => {
  const r = await client.testConnection();
  assert(r.ok, r.message);
});
await check("discoverAgents", async () => {
  const agents = await client.discoverAgents({ capability: "code-review", maxPrice: 50, sortBy: "base_price", limit: 10 });
  assert(Array.isArray(agents) && agents.some((a) => a.did === agentDid), JSON.stringify(agents));
});
await check("listAgentsByCapability", async () => {
  const agents = await client.listAgentsByCapability("code-review");
  assert(Array.isArray(agents) && agents.length >= 2, JSON.stringify(agents));
});
await check("getAgentProfile", async () => {
  const p = await client.getAgentProfile(agentDid);
  assert(p.did === agentDid && p.base_price === "10.00" && Array.isArray(p.capabilities), JSON.stringify(p));
});
await check("listCapabilities", async () => {
  const caps = await client.listCapabilities();
  assert(caps.some((c) => c.name === "code-review" && c.agent_count >= 2), JSON.stringify(caps));
});

let task;
await check("createTask", async () => {
  task = await client.createTask({ providerAgentId: agentDid, capability: "code-review", input: "Review PR #1", maxPrice: "10.00" });
  assert(task.id && task.status === "pending" && task.payment_status === "unpaid", JSON.stringify(task));
});
await check("createTaskPayment", async () => {
  const p = await client.createTaskPayment(task.id);
  assert(p.id && p.task_id === task.id && p.amount === "10.00" && p.escrow_held === true, JSON.stringify(p));
  const again = await client.createTaskPayment(task.id);
  assert(again.id === p.id, "the same payment, never a second hold");
});
await check("getTaskPayment", async () => {
  const p = await client.getTaskPayment(task.id);
  assert(p.status === "escrowed", JSON.stringify(p));
});
await check("escrow lock visible in getBalance", async () => {
  const b = await client.getBalance();
  assert(b.available === "90.00" && b.escrow === "10.00" && b.total === "100.00", JSON.stringify(b));
});
await check("getTask", async () => {
  const t = await client.getTask(task.id);
  assert(t.id === task.id && t.input.prompt === "Review PR #1", JSON.stringify(t));
});
await check("getTaskProgress", async () => {
  const p = await client.getTaskProgress(task.id);
  assert(p.status === "pending" && p.progress_percent === 0, JSON.stringify(p));
});
await check("getTaskTimeline", async () => {
  const t = await client.getTaskTimeline(task.id);
  assert(t.events.map((e) => e.event_type).includes("payment_escrowed"), JSON.stringify(t));
});
await check("getTaskAttempts", async () => {
  const a = await client.getTaskAttempts(task.id);
  assert(Array.isArray(a.attempts), JSON.stringify(a));
});
await check("sendMessageToTask", async () => {
  const m = await client.sendMessageToTask(task.id, { message: "Focus on error handling", messageType: "instruction" });
  assert(m.message_id && m.task_id === task.id && m.sent_at, JSON.stringify(m));
});
await check("getTaskMessages", async () => {
  const ms = await client.getTaskMessages(task.id);
  assert(ms.length === 1 && ms[0].content === "Focus on error handling", JSON.stringify(ms));
});
await check("reassignTask", async () => {
  const r = await client.reassignTask(task.id, agent2Did);
  assert(r.task_id === task.id && r.new_agent_did === agent2Did && r.previous_agent_did === agentDid, JSON.stringify(r));
});
await check("cancelTask (empty body) and refund visible in getBalance", async () => {
  const t = await client.cancelTask(task.id);
  assert(t.status === "cancelled" && t.payment_status === "refunded", JSON.stringify(t));
  const b = await client.getBalance();
  assert(b.available === "100.00" && b.escrow === "0.00", JSON.stringify(b));
});
await check("webhook delivered and verified with verifyWebhookSignature", async () => {
  for (let i = 0; i < 100 && !received.some((r) => r.headers["x-webhook-event"] === "task.cancelled"); i++) await sleep(200);
  const cancelled = received.find((r) => r.headers["x-webhook-event"] === "task.cancelled");
  assert(cancelled, `no task.cancelled delivery; got ${received.map((r) => r.headers["x-webhook-event"])}`);
  assert(await verifyWebhookSignature(cancelled.body, cancelled.headers["x-webhook-signature"], webhook.secret_key), "signature verifies");
  assert(!(await verifyWebhookSignature(cancelled.body, cancelled.headers["x-webhook-signature"], "whsec_wrong")), "a wrong secret fails");
  const payload = JSON.parse(cancelled.body);
  assert(payload.task_id === task.id && payload.status === "cancelled", cancelled.body);
  assert(cancelled.headers["x-webhook-task-id"] === task.id, "task id header");
});
await check("deleteWebhook", async () => {
  const r = await client.deleteWebhook(webhook.id);
  assert(r && r.id === webhook.id && r.status === "deleted", JSON.stringify(r));
  const list = await client.listWebhooks();
  assert(!list.some((w) => w.id === webhook.id), "gone");
});

let hiring;
const hireOptions = {
  taskDescription: "Review the adapter",
  capabilityRequested: "code-review",
  price: 10,
  clientIdempotencyKey: "paperclip-run-1",
  taskInput: { paperclip_run_id: "run-1", paperclip_issue_id: "ISS-1" },
};
await check("hireAgent", async () => {
  const r = await client.hireAgent(agentDid, hireOptions);
  hiring = r.hiring;
  assert(hiring.id && hiring.price === "10.00" && r.config.agentDid === agentDid && r.config.hiringId === hiring.id, JSON.stringify(r));
  const b = await client.getBalance();
  assert(b.escrow === "10.00", `escrow held at once: ${JSON.stringify(b)}`);
});
await check("hireAgent idempotent replay", async () => {
  const r = await client.hireAgent(agentDid, hireOptions);
  assert(r.hiring.id === hiring.id, "the original hiring");
  const b = await client.getBalance();
  assert(b.escrow === "10.00", "no second hold");
});
await check("hireAgent idempotency conflict", async () => {
  let failed = false;
  try {
    await client.hireAgent(agentDid, { ...hireOptions, price: 11 });
  } catch (err) {
    failed = String(err).includes("409") && String(err).includes("IDEMPOTENCY_CONFLICT");
  }
  assert(failed, "409 IDEMPOTENCY_CONFLICT");
});
await check("getHiring", async () => {
  for (let i = 0; i < 50; i++) {
    hiring = await client.getHiring(hiring.id);
    if (hiring.status !== "queued") break;
    await sleep(100);
  }
  assert(hiring.status === "in_progress" && hiring.final === false, JSON.stringify(hiring));
  assert(Array.isArray(hiring.messages) && Array.isArray(hiring.open_questions) && Array.isArray(hiring.artifacts), "lists");
});
await check("listHirings", async () => {
  const list = await client.listHirings({ limit: 5 });
  assert(list.some((h) => h.id === hiring.id), JSON.stringify(list));
});
await check("sendMessageToHiring", async () => {
  const m = await client.sendMessageToHiring(hiring.id, "Please also check the tests");
  assert(m.id && m.content === "Please also check the tests", JSON.stringify(m));
});
await check("getHiringMessages", async () => {
  const ms = await client.getHiringMessages(hiring.id);
  assert(ms.some((m) => m.content === "Please also check the tests"), JSON.stringify(ms));
});
await check("retryHiring", async () => {
  const h = await client.retryHiring(hiring.id, { reason: "nudge" });
  assert(h.id === hiring.id && h.trace_attempt === 2, JSON.stringify(h));
});
await check("cancelHiring and refund visible in getBalance", async () => {
  const h = await client.cancelHiring(hiring.id);
  assert(h.status === "cancelled" && h.final === true, JSON.stringify(h));
  const b = await client.getBalance();
  assert(b.available === "100.00" && b.escrow === "0.00", JSON.stringify(b));
});

await check("uploadDocument", async () => {
  const u = await client.uploadDocument({ name: "instructions.md", content: "Review carefully." });
  assert(u.id && u.file_hash && u.file_url && u.document_type === "instructions" && u.content_type === "text/plain", JSON.stringify(u));
});
await check("deposit", async () => {
  const d = await client.deposit({ amount: "5.00", paymentMethod: "sandbox" });
  assert(d.transaction_id && d.status === "completed", JSON.stringify(d));
});
await check("deposit with the default method (crypto) returns a NOWPayments payment page", async () => {
  const d = await client.deposit({ amount: "5.00" });
  assert(d.transaction_id && d.status === "pending" && d.payment_url, JSON.stringify(d));
});
await check("createPaymentIntent with the default type (crypto) returns a payment page", async () => {
  const p = await client.createPaymentIntent({ amount: "6.00" });
  assert(p.id && p.status === "pending" && p.payment_url, JSON.stringify(p));
});
await check("createPaymentIntent", async () => {
  const p = await client.createPaymentIntent({ amount: "7.00", paymentType: "manual" });
  assert(p.id && p.status === "pending", JSON.stringify(p));
});
await check("withdraw", async () => {
  const res = await fetch(`${base}/api/v1/withdrawal-addresses`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": userKey },
    body: JSON.stringify({ currency: "USDC", address: "0xpaperclip" }),
  });
  const address = (await res.json()).data;
  const w = await client.withdraw({ amount: "3.00", withdrawalAddressId: address.id });
  assert(w.transaction_id && w.status === "pending", JSON.stringify(w));
  const b = await client.getBalance();
  assert(b.available === "102.00", JSON.stringify(b));
});
await check("getTransactions", async () => {
  const txs = await client.getTransactions({ limit: 50 });
  const types = new Set(txs.map((t) => t.type));
  for (const t of ["deposit", "escrow_hold", "escrow_refund", "withdrawal"]) assert(types.has(t), `${t} in ${[...types]}`);
  const deposits = await client.getTransactions({ type: "deposit" });
  assert(deposits.every((t) => t.type === "deposit"), "filtered");
});
await check("testPaperclipEnvironment", async () => {
  const r = await testPaperclipEnvironment({ config: { agrentingUrl: base, apiKey: userKey, agentDid } });
  const errors = (r.checks || []).filter((c) => c.level === "error");
  assert(errors.length === 0, JSON.stringify(r));
});

server.close();
const failed = results.filter((r) => !r.ok);
console.log(JSON.stringify({ passed: results.filter((r) => r.ok).map((r) => r.name), failed }));
process.exit(failed.length ? 1 : 0);
