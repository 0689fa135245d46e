import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type ApprovalQueue, CODE_FAILURES_ALLOWED, MAX_PENDING } from "../../durable-objects/approval-queue";
import { BACKOFF, type OutboxEntry } from "../../durable-objects/outbox";
import type { Approval, ApprovalRequest } from "../../schemas/approval";
import { setClock } from "../../workers/clock";
import { atHash } from "../../workers/tokens/access-token";
import { mintHandle } from "../../workers/tokens/handles";
import { basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

/**
 * ApprovalQueue as the state machine in its header: every transition and refusal, exactly once under
 * concurrency, expiry by alarm, and the outbox: ping and push callbacks and Web Push retried with
 * backoff, never delivered twice for one decision. Decisions happen at T + 100 and later, so the
 * alarms they set lie in the future and run only when a test runs them (`runDurableObjectAlarm`).
 */
const T = Math.floor(Date.now() / 1000);
const ALICE: Approval = { sub: "usr_dev_alice", auth_time: T, amr: ["pwd"] };
type Stub = DurableObjectStub<ApprovalQueue>;
let pushClient: CreatedClient;

beforeAll(async () => {
  pushClient = await createClient({
    client_name: "Push agent",
    grant_types: ["urn:openid:params:grant-type:ciba", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
    backchannel_token_delivery_mode: "push",
    backchannel_client_notification_endpoint: "https://agent.example/cb",
  });
});
afterEach(() => {
  setClock();
  vi.restoreAllMocks();
});

async function queued(overrides: Partial<ApprovalRequest> = {}): Promise<{ stub: Stub; request: ApprovalRequest; authReqId: string }> {
  const id = env.APPROVALS.idFromName(`user:test-${crypto.randomUUID()}`);
  const stub = env.APPROVALS.get(id);
  const handle = await mintHandle("auth_req", id.toString());
  const request: ApprovalRequest = {
    id: crypto.randomUUID(),
    kind: "ciba",
    handle_hash: handle.hash,
    client_id: "client_a",
    client_name: "Agent",
    sub: ALICE.sub,
    scope: ["openid", "mcp:read"],
    resources: [MCP_RESOURCE],
    binding_message: "W4SCT",
    delivery: "poll",
    created_at: T,
    expires_at: T + 600,
    interval: 5,
    ...overrides,
  };
  expect(await stub.enqueue(request)).toEqual({ ok: true });
  return { stub, request, authReqId: handle.token };
}

/** Records outbound fetches and answers with `statuses` in turn (the last one repeats). */
function mockFetch(...statuses: number[]) {
  const calls: Array<{ url: string; headers: Headers; body: string | Uint8Array }> = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const body = init?.body instanceof Uint8Array ? init.body : String(init?.body);
    calls.push({ url: String(input), headers: new Headers(init?.headers), body });
    return new Response(null, { status: statuses[Math.min(calls.length - 1, statuses.length - 1)] });
  });
  return calls;
}

async function runAlarmAt(stub: Stub, at: number): Promise<void> {
  setClock(() => at * 1000);
  await runDurableObjectAlarm(stub);
}

describe("ApprovalQueue transitions", () => {
  it("pending → approved → redeemed, exactly once; every refusal reason", async () => {
    const { stub, request } = await queued();
    const poll = (now: number, client_id = "client_a") => stub.poll({ handle_hash: request.handle_hash, client_id, now });
    expect(await stub.enqueue(request)).toEqual({ ok: false, reason: "exists" });
    expect(await poll(T + 1)).toEqual({ ok: false, reason: "pending" });
    expect(await poll(T + 2)).toEqual({ ok: false, reason: "slow_down", interval: 10 });
    expect(await poll(T + 3)).toEqual({ ok: false, reason: "slow_down", interval: 15 });
    expect(await poll(T + 20, "client_b")).toEqual({ ok: false, reason: "client_mismatch" });
    expect(await stub.poll({ handle_hash: "nope", client_id: "client_a", now: T })).toEqual({ ok: false, reason: "unknown" });
    expect(await stub.approve({ id: request.id, approval: { ...ALICE, sub: "usr_mallory" }, now: T + 100 })).toEqual({ ok: false, reason: "wrong_user" });
    expect(await stub.approve({ id: "nope", approval: ALICE, now: T + 100 })).toEqual({ ok: false, reason: "unknown" });
    expect(await stub.approve({ id: request.id, approval: ALICE, now: T + 100 })).toMatchObject({ ok: true });
    expect(await stub.deny({ id: request.id, sub: ALICE.sub, now: T + 101 })).toEqual({ ok: false, reason: "not_pending" });
    expect(await poll(T + 200)).toMatchObject({ ok: true, request: { id: request.id, scope: ["openid", "mcp:read"] }, approval: ALICE });
    expect(await poll(T + 300)).toEqual({ ok: false, reason: "redeemed" });
    expect(await stub.find({ id: request.id })).toMatchObject({ state: "redeemed" });
  });

  it("redeemed → approved by release when issuing failed: the next poll redeems again at once; nothing else releases", async () => {
    const { stub, request } = await queued();
    const poll = (now: number) => stub.poll({ handle_hash: request.handle_hash, client_id: "client_a", now });
    const release = (client_id = "client_a", handle_hash = request.handle_hash) => stub.release({ handle_hash, client_id });
    expect(await release()).toEqual({ ok: false, reason: "not_redeemed" });
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    expect(await release()).toEqual({ ok: false, reason: "not_redeemed" });
    expect(await poll(T + 200)).toMatchObject({ ok: true });
    expect(await release("client_b")).toEqual({ ok: false, reason: "unknown" });
    expect(await release("client_a", "nope")).toEqual({ ok: false, reason: "unknown" });
    expect(await release()).toEqual({ ok: true });
    expect(await stub.find({ id: request.id })).toMatchObject({ state: "approved" });
    expect(await release()).toEqual({ ok: false, reason: "not_redeemed" });
    // One second after the failed poll: not slow_down, because the failed poll does not count.
    expect(await poll(T + 201)).toMatchObject({ ok: true, approval: ALICE });
    expect(await poll(T + 300)).toEqual({ ok: false, reason: "redeemed" });
  });

  it("never releases a push-mode request, which its delivery redeems", async () => {
    const { stub, request } = await queued({ delivery: "push" });
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    await runInDurableObject(stub, async (_, state) => {
      const key = `req:${request.id}`;
      state.storage.kv.put(key, { ...(state.storage.kv.get(key) as object), state: "redeemed" });
    });
    expect(await stub.release({ handle_hash: request.handle_hash, client_id: "client_a" })).toEqual({ ok: false, reason: "not_redeemed" });
  });

  it("pending → denied answers every later poll with denied", async () => {
    const { stub, request } = await queued();
    expect(await stub.deny({ id: request.id, sub: ALICE.sub, now: T + 100 })).toMatchObject({ ok: true });
    expect(await stub.approve({ id: request.id, approval: ALICE, now: T + 101 })).toEqual({ ok: false, reason: "not_pending" });
    expect(await stub.poll({ handle_hash: request.handle_hash, client_id: "client_a", now: T + 200 })).toEqual({ ok: false, reason: "denied" });
    expect(await stub.pending({ now: T + 200 })).toEqual([]);
  });

  it("exactly one of 20 concurrent approvals and denials wins; exactly one of 20 concurrent polls redeems", async () => {
    const { stub, request } = await queued();
    const decisions = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 ? stub.approve({ id: request.id, approval: ALICE, now: T + 100 }) : stub.deny({ id: request.id, sub: ALICE.sub, now: T + 100 }),
      ),
    );
    expect(decisions.filter((d) => d.ok)).toHaveLength(1);
    const second = await queued();
    await second.stub.approve({ id: second.request.id, approval: ALICE, now: T + 100 });
    const polls = await Promise.all(
      Array.from({ length: 20 }, () => second.stub.poll({ handle_hash: second.request.handle_hash, client_id: "client_a", now: T + 200 })),
    );
    expect(polls.filter((p) => p.ok)).toHaveLength(1);
    // The others came while the redemption may still be issuing: slow down, not "used up" (the issue may fail and release it).
    expect(polls.filter((p) => !p.ok && p.reason === "slow_down")).toHaveLength(19);
    // Once an interval has passed, a redeemed request is used up.
    expect(await second.stub.poll({ handle_hash: second.request.handle_hash, client_id: "client_a", now: T + 400 })).toEqual({ ok: false, reason: "redeemed" });
  });

  it("a poll racing a redemption whose issue fails gets slow_down, and the approval after the release", async () => {
    const { stub, request } = await queued();
    const poll = (now: number) => stub.poll({ handle_hash: request.handle_hash, client_id: "client_a", now });
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    expect(await poll(T + 200)).toMatchObject({ ok: true });
    expect(await poll(T + 201)).toEqual({ ok: false, reason: "slow_down", interval: 10 });
    expect(await stub.release({ handle_hash: request.handle_hash, client_id: "client_a" })).toEqual({ ok: true });
    expect(await poll(T + 202)).toMatchObject({ ok: true, approval: ALICE });
  });

  it("expires a pending request by alarm, refuses decisions after expiry, and purges it later", async () => {
    const { stub, request } = await queued({ expires_at: T + 60 });
    expect(await stub.approve({ id: request.id, approval: ALICE, now: T + 60 })).toEqual({ ok: false, reason: "expired" });
    await runAlarmAt(stub, T + 61);
    expect(await stub.find({ id: request.id })).toMatchObject({ state: "expired" });
    expect(await stub.poll({ handle_hash: request.handle_hash, client_id: "client_a", now: T + 62 })).toEqual({ ok: false, reason: "expired" });
    expect(await stub.deny({ id: request.id, sub: ALICE.sub, now: T + 62 })).toEqual({ ok: false, reason: "expired" });
    await runAlarmAt(stub, T + 60 + 601);
    expect(await stub.find({ id: request.id })).toBeNull();
    expect(await runInDurableObject(stub, (_, state) => state.storage.getAlarm())).toBeNull();
  });

  it("limits pending requests per client", async () => {
    const { stub, request } = await queued();
    for (let i = 1; i < 10; i++) expect(await stub.enqueue({ ...request, id: `r${i}`, handle_hash: `h${i}` })).toEqual({ ok: true });
    expect(await stub.enqueue({ ...request, id: "r10", handle_hash: "h10" })).toEqual({ ok: false, reason: "queue_full" });
    expect(await stub.enqueue({ ...request, id: "r11", handle_hash: "h11", client_id: "client_b" })).toEqual({ ok: true });
  });

  it("holds one device request per user-code queue", async () => {
    const { stub, request } = await queued({ kind: "device", sub: undefined, user_code: "BCDFGHJK" });
    expect(await stub.enqueue({ ...request, id: "other", handle_hash: "other" })).toEqual({ ok: false, reason: "exists" });
    // Any signed-in user may approve a device request; it then belongs to them.
    expect(await stub.approve({ id: request.id, approval: { ...ALICE, sub: "usr_dev_bob" }, now: T + 100 })).toMatchObject({ ok: true });
    expect(await stub.poll({ handle_hash: request.handle_hash, client_id: "client_a", now: T + 200 })).toMatchObject({
      ok: true,
      approval: { sub: "usr_dev_bob" },
    });
  });

  it("counts user-code attempts per user as failed until one proves right (RFC 8628 §5.1)", async () => {
    const { stub } = await queued();
    for (let i = 0; i < CODE_FAILURES_ALLOWED; i++) expect(await stub.codeAttempt({ now: T })).toEqual({ ok: true });
    expect(await stub.codeAttempt({ now: T + 10 })).toEqual({ ok: false, retry_after: 890 });
    // A right code takes its count back, so the next attempt may come.
    expect(await stub.codeAttempt({ now: T + 10, succeeded: T })).toEqual({ ok: true });
    expect(await stub.codeAttempt({ now: T + 10 })).toEqual({ ok: true });
    expect(await stub.codeAttempt({ now: T + 10 })).toEqual({ ok: false, retry_after: 890 });
    expect(await stub.codeAttempt({ now: T + 900 })).toEqual({ ok: true });
  });
});

describe("ApprovalQueue outbox (CIBA ping and push, Web Push)", () => {
  const ping = { endpoint: "https://agent.example/cb", token: "notify-token-123" };

  it("pings once per decision, retrying with backoff, and never twice after delivery", async () => {
    const { stub, request, authReqId } = await queued({ delivery: "ping", notification: { ...ping, auth_req_id: "" } });
    await runInDurableObject(stub, async (_, state) => {
      const r = (await state.storage.get<Record<string, unknown>>(`req:${request.id}`)) as Record<string, unknown>;
      await state.storage.put(`req:${request.id}`, { ...r, notification: { ...ping, auth_req_id: authReqId } });
    });
    const calls = mockFetch(503, 204);
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    await runAlarmAt(stub, T + 100);
    expect(calls).toHaveLength(1);
    let entry = (await stub.outbox())[0] as OutboxEntry;
    expect(entry).toMatchObject({ status: "queued", attempts: 1, next_at: T + 100 + BACKOFF[0], last_error: "client answered 503" });
    await runAlarmAt(stub, T + 100 + BACKOFF[0] - 1);
    expect(calls).toHaveLength(1);
    await runAlarmAt(stub, T + 100 + BACKOFF[0]);
    expect(calls).toHaveLength(2);
    entry = (await stub.outbox())[0] as OutboxEntry;
    expect(entry).toMatchObject({ status: "delivered", attempts: 2, delivered_at: T + 110 });
    expect(entry.body).toBeUndefined();
    for (const c of calls) {
      expect(c.url).toBe(ping.endpoint);
      expect(c.headers.get("authorization")).toBe(`Bearer ${ping.token}`);
      expect(c.headers.get("content-type")).toBe("application/json");
      expect(JSON.parse(c.body as string)).toEqual({ auth_req_id: authReqId });
    }
    // Neither another alarm nor another decision sends it again.
    expect(await stub.deny({ id: request.id, sub: ALICE.sub, now: T + 120 })).toEqual({ ok: false, reason: "not_pending" });
    await runAlarmAt(stub, T + 500);
    expect(calls).toHaveLength(2);
  });

  it("keeps the alarm ahead while a finished request waits for a retry, then purges it and leaves nothing behind", async () => {
    const { stub, request } = await queued({ delivery: "ping", notification: { ...ping, auth_req_id: "lka_late" }, expires_at: T + 60 });
    const calls = mockFetch(503);
    await stub.deny({ id: request.id, sub: ALICE.sub, now: T });
    let at = T;
    for (const wait of BACKOFF.slice(0, 3)) {
      await runAlarmAt(stub, at);
      at += wait;
    }
    // Now past the request's purge time (T + 60 + 600), with its delivery still waiting for the next retry.
    await runAlarmAt(stub, T + 700);
    const alarm = await runInDurableObject(stub, (_, state) => state.storage.getAlarm());
    const next = ((await stub.outbox())[0] as OutboxEntry).next_at;
    expect(alarm).toBe(next * 1000);
    expect(next).toBeGreaterThan(T + 700);
    // Once the retries are over, the request goes, and so does the queue's counter.
    for (let i = 0; i < BACKOFF.length; i++) await runAlarmAt(stub, T + 100_000 * (i + 1));
    expect(calls.length).toBe(BACKOFF.length + 1);
    expect(await runInDurableObject(stub, async (_, state) => [...(await state.storage.list()).keys()])).toEqual([]);
  });

  it(`refuses a user's ${MAX_PENDING + 1}th pending request, whichever clients ask`, async () => {
    const { stub, request } = await queued({ client_id: "client_0" });
    const another = async (n: number): Promise<ApprovalRequest> => ({
      ...request,
      id: crypto.randomUUID(),
      handle_hash: (await mintHandle("auth_req", `more-${n}`)).hash,
      client_id: `client_${n}`,
    });
    for (let i = 1; i < MAX_PENDING; i++) expect(await stub.enqueue(await another(i))).toEqual({ ok: true });
    expect(await stub.enqueue(await another(MAX_PENDING))).toEqual({ ok: false, reason: "queue_full" });
  });

  it("gives up after the last backoff step", async () => {
    // Expiring long after the retries end, so the finished request is not purged before we look.
    const { stub, request } = await queued({ delivery: "ping", notification: { ...ping, auth_req_id: "lka_x" }, expires_at: T + 100_000 });
    const calls = mockFetch(500);
    await stub.deny({ id: request.id, sub: ALICE.sub, now: T + 100 });
    let at = T + 100;
    for (const wait of BACKOFF) {
      await runAlarmAt(stub, at);
      at += wait;
    }
    await runAlarmAt(stub, at);
    expect(calls).toHaveLength(BACKOFF.length + 1);
    expect(await stub.outbox()).toEqual([expect.objectContaining({ status: "failed", attempts: BACKOFF.length + 1 })]);
    await runAlarmAt(stub, at + 10_000);
    expect(calls).toHaveLength(BACKOFF.length + 1);
  });

  it("pushes the token response once (CIBA §10.3.1): the same bytes on a retry, ID token with auth_req_id, at_hash, rt_hash", async () => {
    const { stub, request } = await queued({
      client_id: pushClient.client_id,
      scope: ["openid", "offline_access", "mcp:read"],
      delivery: "push",
      notification: { ...ping, auth_req_id: "lka_push_request" },
    });
    const calls = mockFetch(502, 204);
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    await runAlarmAt(stub, T + 100);
    expect(await stub.find({ id: request.id })).toMatchObject({ state: "redeemed" });
    await runAlarmAt(stub, T + 100 + BACKOFF[0]);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.body).toBe(calls[0]?.body);
    const pushed = JSON.parse(calls[0]?.body as string) as Record<string, string>;
    expect(pushed).toEqual({
      access_token: expect.any(String),
      token_type: "Bearer",
      expires_in: 600,
      scope: "mcp:read",
      refresh_token: expect.stringMatching(/^lkr_/),
      id_token: expect.any(String),
      auth_req_id: "lka_push_request",
    });
    const keys = createLocalJWKSet(await (await call("/jwks")).json());
    const { payload } = await jwtVerify(pushed.id_token as string, keys, {
      issuer: ISSUER,
      audience: pushClient.client_id,
      currentDate: new Date((T + 100) * 1000),
    });
    expect(payload).toMatchObject({
      sub: ALICE.sub,
      "urn:openid:params:jwt:claim:auth_req_id": "lka_push_request",
      at_hash: await atHash(pushed.access_token as string),
      "urn:openid:params:jwt:claim:rt_hash": await atHash(pushed.refresh_token as string),
    });
    expect(decodeJwt(pushed.access_token as string).aud).toBe(MCP_RESOURCE);
    // Redeemed by the push: a poll now gets nothing.
    expect(await stub.poll({ handle_hash: request.handle_hash, client_id: pushClient.client_id, now: T + 200 })).toEqual({ ok: false, reason: "redeemed" });
  });

  it("mints a push with what attestation policy allowed when the client asked (lifetime, attested facts, refresh tokens bound to the instance key)", async () => {
    const attested = { iss: "https://verifier.example", jkt: "jkt-1", pop: "attestation_pop_jwt" as const, model_provider: "anthropic" };
    const { stub, request } = await queued({
      client_id: pushClient.client_id,
      scope: ["openid", "offline_access", "mcp:read"],
      delivery: "push",
      notification: { ...ping, auth_req_id: "lka_push_attested" },
      attestation: { max_lifetime: 90, attested },
    });
    const calls = mockFetch(204);
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    await runAlarmAt(stub, T + 100);
    const pushed = JSON.parse(calls[0]?.body as string) as Record<string, string>;
    expect(pushed.expires_in).toBe(90);
    expect(decodeJwt(pushed.access_token as string).attested).toEqual(attested);
    // Refreshing takes an attestation of the same Client Instance Key; the client's secret alone is not enough.
    await expectError(
      await postForm(
        "/token",
        { grant_type: "refresh_token", refresh_token: pushed.refresh_token as string },
        { Authorization: basic(pushClient.client_id, pushClient.client_secret as string) },
      ),
      400,
      "invalid_grant",
      "the refresh token is bound to the client instance key of the attestation it was issued under",
    );
  });

  it("gives up a push whose access token expired while its endpoint was failing, rather than deliver dead tokens", async () => {
    const { stub, request } = await queued({
      client_id: pushClient.client_id,
      scope: ["openid", "mcp:read"],
      delivery: "push",
      notification: { ...ping, auth_req_id: "lka_too_late" },
      expires_at: T + 100_000,
    });
    const calls = mockFetch(502);
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    let at = T + 100;
    for (const wait of BACKOFF.slice(0, 4)) {
      await runAlarmAt(stub, at);
      at += wait;
    }
    expect(calls).toHaveLength(4);
    // The next attempt comes after the access token's 600 s: nothing more is sent.
    expect(at).toBeGreaterThan(T + 100 + 600);
    await runAlarmAt(stub, at);
    expect(calls).toHaveLength(4);
    expect(await stub.outbox()).toEqual([expect.objectContaining({ status: "failed", attempts: 5, last_error: "the pushed tokens expired before delivery" })]);
  });

  it("pushes transaction_failed when the tokens cannot be issued (the client is gone)", async () => {
    const { stub, request } = await queued({ client_id: "lk_deleted", delivery: "push", notification: { ...ping, auth_req_id: "lka_gone" } });
    const calls = mockFetch(204);
    vi.spyOn(console, "error").mockImplementation(() => {});
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    await runAlarmAt(stub, T + 100);
    expect(calls.map((c) => JSON.parse(c.body as string))).toEqual([
      { error: "transaction_failed", error_description: "the tokens could not be issued", auth_req_id: "lka_gone" },
    ]);
  });

  it("never mints twice: a push whose earlier attempt died after redeeming sends transaction_failed", async () => {
    const { stub, request } = await queued({ client_id: pushClient.client_id, delivery: "push", notification: { ...ping, auth_req_id: "lka_crashed" } });
    await stub.approve({ id: request.id, approval: ALICE, now: T + 100 });
    // As if the Worker died after the redeem was written and before the minted body was.
    await runInDurableObject(stub, (_, state) => {
      const r = state.storage.kv.get<Record<string, unknown>>(`req:${request.id}`);
      state.storage.kv.put(`req:${request.id}`, { ...r, state: "redeemed" });
    });
    const calls = mockFetch(204);
    await runAlarmAt(stub, T + 100);
    expect(calls.map((c) => JSON.parse(c.body as string))).toEqual([
      { error: "transaction_failed", error_description: "the tokens could not be issued", auth_req_id: "lka_crashed" },
    ]);
  });

  it("pushes errors as {error, error_description, auth_req_id}: denial and expiry", async () => {
    const denied = await queued({ delivery: "push", notification: { ...ping, auth_req_id: "lka_denied" } });
    const expired = await queued({ delivery: "push", notification: { ...ping, auth_req_id: "lka_expired" }, expires_at: T + 60 });
    const calls = mockFetch(204);
    await denied.stub.deny({ id: denied.request.id, sub: ALICE.sub, now: T + 100 });
    await runAlarmAt(denied.stub, T + 100);
    await runAlarmAt(expired.stub, T + 61);
    await runAlarmAt(expired.stub, T + 62);
    expect(calls.map((c) => JSON.parse(c.body as string))).toEqual([
      { error: "access_denied", error_description: "the user denied the request", auth_req_id: "lka_denied" },
      { error: "expired_token", error_description: "the request expired before the user decided", auth_req_id: "lka_expired" },
    ]);
  });

  it("sends the user's notifications while clients' endpoints are slow to answer", async () => {
    const id = env.APPROVALS.idFromName(`user:test-${crypto.randomUUID()}`);
    const stub = env.APPROVALS.get(id);
    const keys = { p256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", auth: "BTBZMqHH6r4Tts7J_aSIgg" };
    let release = () => {};
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    const urls: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      urls.push(String(input));
      if (String(input) === ping.endpoint) await slow;
      return new Response(null, { status: 201 });
    });
    const base = (await queued()).request;
    for (const n of [1, 2]) {
      const handle = await mintHandle("auth_req", `${id}-${n}`);
      await stub.enqueue({
        ...base,
        id: `slow-${n}`,
        handle_hash: handle.hash,
        client_id: `client_${n}`,
        delivery: "ping",
        notification: { ...ping, auth_req_id: `lka_${n}` },
      });
      await stub.deny({ id: `slow-${n}`, sub: ALICE.sub, now: T + 100 });
    }
    await stub.subscribe({ endpoint: "https://push.example/live", keys, created_at: T });
    const handle = await mintHandle("auth_req", `${id}-new`);
    await stub.enqueue({ ...base, id: "new", handle_hash: handle.hash, created_at: T + 100 });
    const run = runAlarmAt(stub, T + 100);
    // The Web Push goes out while both clients' endpoints still hang.
    await vi.waitFor(() => expect(urls).toContain("https://push.example/live"), { timeout: 2000 });
    expect(urls.filter((u) => u === ping.endpoint)).toHaveLength(2);
    release();
    await run;
  });

  it("sends a new request to each Web Push subscription (aes128gcm, VAPID), and drops a subscription that is gone (410)", async () => {
    const id = env.APPROVALS.idFromName(`user:test-${crypto.randomUUID()}`);
    const stub = env.APPROVALS.get(id);
    const keys = { p256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", auth: "BTBZMqHH6r4Tts7J_aSIgg" };
    await stub.subscribe({ endpoint: "https://push.example/live", keys, created_at: T });
    await stub.subscribe({ endpoint: "https://push.example/gone", keys, created_at: T });
    const calls = mockFetch(201);
    vi.mocked(fetch).mockImplementation(async (input, init) => {
      calls.push({ url: String(input), headers: new Headers(init?.headers), body: init?.body as Uint8Array });
      return new Response(null, { status: String(input).endsWith("gone") ? 410 : 201 });
    });
    const handle = await mintHandle("auth_req", id.toString());
    await stub.enqueue({ ...(await queued()).request, id: "wp", handle_hash: handle.hash, created_at: T + 100 });
    await runAlarmAt(stub, T + 100);
    expect(calls.map((c) => c.url).sort()).toEqual(["https://push.example/gone", "https://push.example/live"]);
    for (const c of calls) {
      expect(c.headers.get("content-encoding")).toBe("aes128gcm");
      expect(c.headers.get("authorization")).toMatch(/^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]{87}$/);
      expect(c.headers.get("ttl")).toBe("600");
      expect(decodeJwt(/t=([^,]+)/.exec(c.headers.get("authorization") as string)?.[1] as string)).toMatchObject({ aud: "https://push.example" });
    }
    const statuses = Object.fromEntries((await stub.outbox()).map((e) => [e.status, e.attempts]));
    expect(statuses).toEqual({ delivered: 1, failed: 1 });
    const left = await runInDurableObject(stub, async (_, state) => [...(await state.storage.list({ prefix: "push:" })).values()]);
    expect(left).toEqual([expect.objectContaining({ endpoint: "https://push.example/live" })]);
  });
});
