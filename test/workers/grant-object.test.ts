import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { GrantObject } from "../../durable-objects/grant";
import { ALARM_SLACK } from "../../durable-objects/grant-record";
import type { GrantData, GrantLifetimes } from "../../schemas/grant";
import { setClock } from "../../workers/clock";
import { randomToken, sha256 } from "../../workers/crypto";
import { type Handle, mintHandle, openSuccessor, sealSuccessor } from "../../workers/tokens/handles";

/**
 * GrantObject as the state machine in its header: every transition, every failure reason, what
 * revokes and what must not, expiry by alarm, and the races that input gates must make atomic.
 *
 * Times are real seconds since the epoch (T) so the alarms the object schedules lie in the future
 * and never fire on their own during a test; the methods take `now`, `alarm()` reads `setClock`.
 */
const T = Math.floor(Date.now() / 1000);
const CODE_TTL = 60;
const LIFETIMES: GrantLifetimes = { expires_at: T + 30 * 86_400, idle_ttl: 14 * 86_400, reuse_window: 30 };
const CLIENT = "client_a";
const OTHER_CLIENT = "client_b";
const REDIRECT_URI = "https://app.example/callback";

type Stub = DurableObjectStub<GrantObject>;

interface Fixture {
  stub: Stub;
  objectId: string;
  code: Handle;
  verifier: string;
  data: GrantData;
}

afterEach(() => setClock());

/** A pending grant: `create` at T with a code that expires at T + CODE_TTL. */
async function pending(opts: { refresh?: boolean; lifetimes?: Partial<GrantLifetimes>; dpop_jkt?: string } = {}): Promise<Fixture> {
  const id = env.GRANTS.newUniqueId();
  const stub = env.GRANTS.get(id);
  const objectId = id.toString();
  const code = await mintHandle("code", objectId);
  const verifier = randomToken(32);
  const data: GrantData = {
    client_id: CLIENT,
    sub: "usr_alice",
    scope: ["openid", "offline_access", "mcp:read"],
    resources: ["http://localhost:8788/mcp"],
    auth_time: T - 5,
    amr: ["pwd"],
    nonce: "n-0S6_WzA2Mj",
    refresh: opts.refresh ?? true,
  };
  const created = await stub.create({
    data,
    code: {
      hash: code.hash,
      expires_at: T + CODE_TTL,
      code_challenge: await sha256(verifier),
      redirect_uri: REDIRECT_URI,
      ...(opts.dpop_jkt ? { dpop_jkt: opts.dpop_jkt } : {}),
    },
    lifetimes: { ...LIFETIMES, ...opts.lifetimes },
    now: T,
  });
  expect(created).toEqual({ ok: true });
  return { stub, objectId, code, verifier, data };
}

/** The redeemCode input a legitimate client sends for `f`, at `now`. */
async function redemption(f: Fixture, now = T + 1, refresh_hash?: string) {
  return {
    code_hash: f.code.hash,
    client_id: CLIENT,
    code_verifier_s256: await sha256(f.verifier),
    redirect_uri: REDIRECT_URI,
    refresh_hash,
    resource: [] as string[],
    now,
  };
}

/** An active grant whose first refresh token was issued at T + 1. */
async function active(opts: { lifetimes?: Partial<GrantLifetimes> } = {}): Promise<Fixture & { refresh: Handle }> {
  const f = await pending(opts);
  const refresh = await mintHandle("refresh", f.objectId);
  expect(await f.stub.redeemCode(await redemption(f, T + 1, refresh.hash))).toEqual({ ok: true, data: f.data, refresh_issued: true });
  return { ...f, refresh };
}

/** What the token endpoint does on refresh: mint a successor, seal it under the presented token. */
async function rotate(f: Fixture, presented: Handle, now: number, client_id = CLIENT, dpop_jkt?: string, resource: string[] = []) {
  const successor = await mintHandle("refresh", f.objectId);
  const sealed = await sealSuccessor(presented.token, successor.token);
  const result = await f.stub.refresh({
    token_hash: presented.hash,
    client_id,
    successor_hash: successor.hash,
    sealed_successor: sealed,
    dpop_jkt,
    resource,
    now,
  });
  return { result, successor, sealed };
}

/** The stored record and alarm, to prove that a call changed nothing (or exactly what). */
function snapshot(stub: Stub) {
  return runInDurableObject(stub, async (_, state) => ({ grant: await state.storage.get("grant"), alarm: await state.storage.getAlarm() }));
}

function storageKeys(stub: Stub) {
  return runInDurableObject(stub, async (_, state) => ({ keys: [...(await state.storage.list()).keys()], alarm: await state.storage.getAlarm() }));
}

describe("create: (none) → pending", () => {
  it("stores the grant once, arms the alarm at code expiry, and answers a second create with exists", async () => {
    const f = await pending();
    expect(await storageKeys(f.stub)).toEqual({ keys: ["grant"], alarm: (T + CODE_TTL) * 1000 });
    const again = await f.stub.create({
      data: { ...f.data, sub: "usr_mallory" },
      code: { hash: "x", expires_at: T + 600, code_challenge: "y", redirect_uri: REDIRECT_URI },
      lifetimes: LIFETIMES,
      now: T,
    });
    expect(again).toEqual({ ok: false, reason: "exists" });
    expect(await f.stub.redeemCode(await redemption(f))).toMatchObject({ ok: true, data: { sub: "usr_alice" } });
  });

  it("a pending grant is not active: status answers inactive before the code is redeemed", async () => {
    const f = await pending();
    expect(await f.stub.status({ now: T + 1 })).toEqual({ active: false });
  });

  it("keeps its state across eviction (the constructor reloads it from storage)", async () => {
    const f = await pending();
    await f.stub.status({ now: T });
    await evictDurableObject(f.stub);
    expect(await f.stub.redeemCode(await redemption(f))).toEqual({ ok: true, data: f.data, refresh_issued: false });
  });
});

describe("redeemCode: pending → active (OAuth 2.1 §4.1.3)", () => {
  it("activates the grant with a refresh token and moves the alarm to the family's idle deadline", async () => {
    const f = await pending();
    const refresh = await mintHandle("refresh", f.objectId);
    expect(await f.stub.redeemCode(await redemption(f, T + 1, refresh.hash))).toEqual({ ok: true, data: f.data, refresh_issued: true });
    expect(await f.stub.status({ now: T + 2 })).toEqual({ active: true, data: f.data });
    expect(await f.stub.status({ refresh_hash: refresh.hash, now: T + 2 })).toEqual({
      active: true,
      data: f.data,
      refresh: { iat: T + 1, exp: T + 1 + LIFETIMES.idle_ttl },
    });
    expect((await snapshot(f.stub)).alarm).toBe((T + 1 + LIFETIMES.idle_ttl) * 1000);
  });

  it("activates without a refresh token when the redemption brings none", async () => {
    const f = await pending();
    expect(await f.stub.redeemCode(await redemption(f))).toEqual({ ok: true, data: f.data, refresh_issued: false });
    expect(await f.stub.status({ now: T + 2 })).toEqual({ active: true, data: f.data });
  });

  it("issues no refresh token when the grant does not allow it (data.refresh false), even if a hash is offered", async () => {
    const f = await pending({ refresh: false });
    const refresh = await mintHandle("refresh", f.objectId);
    expect(await f.stub.redeemCode(await redemption(f, T + 1, refresh.hash))).toEqual({ ok: true, data: f.data, refresh_issued: false });
    expect(await f.stub.status({ refresh_hash: refresh.hash, now: T + 2 })).toEqual({ active: false });
    expect((await rotate(f, refresh, T + 3)).result).toEqual({ ok: false, reason: "unknown" });
  });

  it("answers unknown for a wrong code hash, and for an object that was never created", async () => {
    const f = await pending();
    const other = await mintHandle("code", f.objectId);
    expect(await f.stub.redeemCode({ ...(await redemption(f)), code_hash: other.hash })).toEqual({ ok: false, reason: "unknown" });
    const empty = env.GRANTS.get(env.GRANTS.newUniqueId());
    expect(await empty.redeemCode(await redemption(f))).toEqual({ ok: false, reason: "unknown" });
    expect(await storageKeys(empty)).toEqual({ keys: [], alarm: null });
    // The failed attempts changed nothing: the right code still works.
    expect(await f.stub.redeemCode(await redemption(f))).toMatchObject({ ok: true });
  });

  it("answers client_mismatch for another client's redemption", async () => {
    const f = await pending();
    expect(await f.stub.redeemCode({ ...(await redemption(f)), client_id: OTHER_CLIENT })).toEqual({ ok: false, reason: "client_mismatch" });
    expect(await f.stub.redeemCode(await redemption(f))).toMatchObject({ ok: true });
  });

  it("answers pkce_mismatch for a wrong code_verifier (RFC 7636 §4.6)", async () => {
    const f = await pending();
    const wrong = await sha256(randomToken(32));
    expect(await f.stub.redeemCode({ ...(await redemption(f)), code_verifier_s256: wrong })).toEqual({ ok: false, reason: "pkce_mismatch" });
    expect(await f.stub.redeemCode(await redemption(f))).toMatchObject({ ok: true });
  });

  it("answers redirect_uri_mismatch only when a different redirect_uri is given", async () => {
    const f = await pending();
    const wrongUri = { ...(await redemption(f)), redirect_uri: "https://app.example/other" };
    expect(await f.stub.redeemCode(wrongUri)).toEqual({ ok: false, reason: "redirect_uri_mismatch" });
    const { redirect_uri: _omitted, ...withoutUri } = await redemption(f);
    expect(await f.stub.redeemCode(withoutUri)).toEqual({ ok: true, data: f.data, refresh_issued: false });
  });

  it("answers expired from the code's expires_at on (now >= expires_at), and stays pending", async () => {
    const f = await pending();
    expect(await f.stub.redeemCode(await redemption(f, T + CODE_TTL))).toEqual({ ok: false, reason: "expired" });
    expect(await f.stub.redeemCode(await redemption(f, T + CODE_TTL + 3600))).toEqual({ ok: false, reason: "expired" });
    expect(await f.stub.redeemCode(await redemption(f, T + CODE_TTL - 1))).toEqual({ ok: true, data: f.data, refresh_issued: false });
  });

  it("a second otherwise-valid redemption is replayed and revokes the grant and its refresh tokens", async () => {
    const f = await active();
    expect(await f.stub.redeemCode(await redemption(f, T + 2))).toEqual({ ok: false, reason: "replayed" });
    expect(await f.stub.status({ now: T + 3 })).toEqual({ active: false });
    expect(await f.stub.status({ refresh_hash: f.refresh.hash, now: T + 3 })).toEqual({ active: false });
    expect((await rotate(f, f.refresh, T + 3)).result).toEqual({ ok: false, reason: "revoked" });
    // Later replays find the grant revoked; it is kept (alarm at the family's end) so they say so.
    expect(await f.stub.redeemCode(await redemption(f, T + 4))).toEqual({ ok: false, reason: "revoked" });
    expect((await snapshot(f.stub)).alarm).toBe(LIFETIMES.expires_at * 1000);
    expect((await snapshot(f.stub)).grant).toMatchObject({ state: "revoked", revoked_reason: "authorization_code_replayed" });
  });

  it("a valid replay after the code's expiry is still a replay and revokes", async () => {
    const f = await active();
    expect(await f.stub.redeemCode(await redemption(f, T + CODE_TTL + 600))).toEqual({ ok: false, reason: "replayed" });
    expect(await f.stub.status({ now: T + CODE_TTL + 601 })).toEqual({ active: false });
  });

  it("a replay with the wrong client, verifier or redirect_uri does not revoke the grant", async () => {
    const f = await active();
    const valid = await redemption(f, T + 2);
    const before = await snapshot(f.stub);
    expect(await f.stub.redeemCode({ ...valid, client_id: OTHER_CLIENT })).toEqual({ ok: false, reason: "client_mismatch" });
    expect(await f.stub.redeemCode({ ...valid, code_verifier_s256: await sha256(randomToken(32)) })).toEqual({ ok: false, reason: "pkce_mismatch" });
    expect(await f.stub.redeemCode({ ...valid, redirect_uri: "https://evil.example/cb" })).toEqual({ ok: false, reason: "redirect_uri_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    expect((await rotate(f, f.refresh, T + 3)).result).toEqual({ ok: true, data: f.data, retry: false });
  });
});

describe("a refused resource (RFC 8707 §2.2) changes nothing", () => {
  const refusals: Array<[string, string[], string]> = [
    ["one the grant does not cover", ["https://other.example/"], "resource https://other.example/ was not granted"],
    ["two at once", ["http://localhost:8788/mcp", "https://other.example/"], "request a token for one resource at a time"],
  ];

  it.each(refusals)("redeemCode with %s leaves the code unspent", async (_, resource, description) => {
    const f = await pending();
    const refresh = await mintHandle("refresh", f.objectId);
    const before = await snapshot(f.stub);
    expect(await f.stub.redeemCode({ ...(await redemption(f, T + 1, refresh.hash)), resource })).toEqual({ ok: false, reason: "target_refused", description });
    expect(await snapshot(f.stub)).toEqual(before);
    expect(await f.stub.redeemCode(await redemption(f, T + 2, refresh.hash))).toEqual({ ok: true, data: f.data, refresh_issued: true });
  });

  it.each(refusals)("refresh with %s keeps the presented token the live one, also on a retry", async (_, resource, description) => {
    const f = await active();
    const before = await snapshot(f.stub);
    expect((await rotate(f, f.refresh, T + 10, CLIENT, undefined, resource)).result).toEqual({ ok: false, reason: "target_refused", description });
    expect(await snapshot(f.stub)).toEqual(before);
    const { successor } = await rotate(f, f.refresh, T + 11);
    // A retry within the reuse window is refused the same way, and does not count as reuse.
    expect((await rotate(f, f.refresh, T + 12, CLIENT, undefined, resource)).result).toEqual({ ok: false, reason: "target_refused", description });
    expect(await f.stub.status({ refresh_hash: successor.hash, now: T + 13 })).toMatchObject({ active: true });
  });
});

describe("undo: a transition whose tokens were never handed out is taken back", () => {
  it("undoRedemption makes the grant pending with its code unspent, exactly as before", async () => {
    const f = await pending({ dpop_jkt: "jkt-code" });
    const before = await snapshot(f.stub);
    const refresh = await mintHandle("refresh", f.objectId);
    const redeemed = await f.stub.redeemCode({
      ...(await redemption(f, T + 1, refresh.hash)),
      dpop_jkt: "jkt-code",
      bind_refresh_to_key: true,
      instance_jkt: "jkt-instance",
    });
    expect(redeemed).toMatchObject({ ok: true, refresh_issued: true });
    expect(await f.stub.undoRedemption({ code_hash: f.code.hash, redeemed_at: T + 1 })).toEqual({ ok: true });
    expect(await snapshot(f.stub)).toEqual(before);
    expect(await f.stub.status({ refresh_hash: refresh.hash, now: T + 2 })).toEqual({ active: false });
    // The code redeems again, and that redemption is not a replay.
    expect(await f.stub.redeemCode({ ...(await redemption(f, T + 2, refresh.hash)), dpop_jkt: "jkt-code" })).toMatchObject({ ok: true });
  });

  it("undoRedemption changes nothing once anything happened since: a replay's revocation, a rotation, another redemption time", async () => {
    const replayed = await active();
    expect(await replayed.stub.redeemCode(await redemption(replayed, T + 2))).toEqual({ ok: false, reason: "replayed" });
    expect(await replayed.stub.undoRedemption({ code_hash: replayed.code.hash, redeemed_at: T + 1 })).toEqual({ ok: false, reason: "changed" });
    expect(await replayed.stub.status({ now: T + 3 })).toEqual({ active: false });

    const rotated = await active();
    await rotate(rotated, rotated.refresh, T + 2);
    const before = await snapshot(rotated.stub);
    expect(await rotated.stub.undoRedemption({ code_hash: rotated.code.hash, redeemed_at: T + 1 })).toEqual({ ok: false, reason: "changed" });
    expect(await rotated.stub.undoRedemption({ code_hash: rotated.code.hash, redeemed_at: T + 2 })).toEqual({ ok: false, reason: "changed" });
    expect(await snapshot(rotated.stub)).toEqual(before);
  });

  it("undoRotation makes the presented token current again, with its own times, and the successor unknown", async () => {
    const f = await active();
    const first = await rotate(f, f.refresh, T + 100);
    const { successor } = await rotate(f, first.successor, T + 200);
    const at = await f.stub.status({ refresh_hash: successor.hash, now: T + 201 });
    const undone = await rotate(f, successor, T + 300);
    expect(await f.stub.undoRotation({ token_hash: successor.hash, successor_hash: undone.successor.hash })).toEqual({ ok: true });
    expect(await f.stub.status({ refresh_hash: successor.hash, now: T + 301 })).toEqual(at);
    expect(await f.stub.status({ refresh_hash: undone.successor.hash, now: T + 301 })).toEqual({ active: false });
    // Long after the reuse window, the presented token rotates as if the undone request had never come.
    expect((await rotate(f, successor, T + 1000)).result).toEqual({ ok: true, data: f.data, retry: false });
  });

  it("undoRotation changes nothing once the successor was used, or for tokens that are not the last rotation's", async () => {
    const f = await active();
    const first = await rotate(f, f.refresh, T + 100);
    expect(await f.stub.undoRotation({ token_hash: f.refresh.hash, successor_hash: "other" })).toEqual({ ok: false, reason: "changed" });
    await rotate(f, first.successor, T + 200);
    const before = await snapshot(f.stub);
    expect(await f.stub.undoRotation({ token_hash: f.refresh.hash, successor_hash: first.successor.hash })).toEqual({ ok: false, reason: "changed" });
    expect(await snapshot(f.stub)).toEqual(before);
  });
});

describe("refresh: active → active (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2)", () => {
  it("rotates: the successor becomes current and the presented token stops being active", async () => {
    const f = await active();
    const { result, successor } = await rotate(f, f.refresh, T + 100);
    expect(result).toEqual({ ok: true, data: f.data, retry: false });
    expect(await f.stub.status({ refresh_hash: successor.hash, now: T + 101 })).toEqual({
      active: true,
      data: f.data,
      refresh: { iat: T + 100, exp: T + 100 + LIFETIMES.idle_ttl },
    });
    expect(await f.stub.status({ refresh_hash: f.refresh.hash, now: T + 101 })).toEqual({ active: false });
    // The idle deadline moved 99 s later: within ALARM_SLACK, so the alarm stays where activation set it.
    expect((await snapshot(f.stub)).alarm).toBe((T + 1 + LIFETIMES.idle_ttl) * 1000);
  });

  it("moves the alarm with a rotation only once the deadline is more than ALARM_SLACK past it", async () => {
    const f = await active();
    const second = await rotate(f, f.refresh, T + 1 + ALARM_SLACK);
    expect((await snapshot(f.stub)).alarm).toBe((T + 1 + LIFETIMES.idle_ttl) * 1000);
    const third = await rotate(f, second.successor, T + 2 + ALARM_SLACK);
    expect(third.result).toMatchObject({ ok: true, retry: false });
    expect((await snapshot(f.stub)).alarm).toBe((T + 2 + ALARM_SLACK + LIFETIMES.idle_ttl) * 1000);
  });

  it("a retry of the just-rotated token within the reuse window gets the same sealed successor; one hand-out given back leaves the rotation standing", async () => {
    const f = await active();
    const first = await rotate(f, f.refresh, T + 100);
    const before = (await snapshot(f.stub)) as { grant: { rotated: object }; alarm: number | null };
    const retry = await rotate(f, f.refresh, T + 100 + LIFETIMES.reuse_window - 1);
    expect(retry.result).toEqual({ ok: true, data: f.data, retry: true, sealed_successor: first.sealed, successor_hash: first.successor.hash });
    // Nothing changes but the count of requests holding the successor.
    expect(await snapshot(f.stub)).toEqual({ ...before, grant: { ...before.grant, rotated: { ...before.grant.rotated, handouts: 2 } } });
    // One of the two fails and gives its hand-out back: the other may have handed the successor out, so the rotation stands.
    expect(await f.stub.undoRotation({ token_hash: f.refresh.hash, successor_hash: first.successor.hash })).toEqual({ ok: true });
    expect(await snapshot(f.stub)).toEqual({ ...before, grant: { ...before.grant, rotated: { ...before.grant.rotated, handouts: 1 } } });
    // Only the holder of the old token can open it, and it opens to the successor that is current.
    expect(await openSuccessor(f.refresh.token, first.sealed)).toBe(first.successor.token);
    expect(await openSuccessor(first.successor.token, first.sealed)).toBeNull();
    expect((await rotate(f, first.successor, T + 200)).result).toEqual({ ok: true, data: f.data, retry: false });
  });

  it("a rotation and its retries that all fail give every hand-out back: the presented token is current again, not reuse", async () => {
    const f = await active();
    const first = await rotate(f, f.refresh, T + 100);
    await rotate(f, f.refresh, T + 101);
    await rotate(f, f.refresh, T + 102);
    const undo = () => f.stub.undoRotation({ token_hash: f.refresh.hash, successor_hash: first.successor.hash });
    expect([await undo(), await undo()]).toEqual([{ ok: true }, { ok: true }]);
    expect(await f.stub.status({ refresh_hash: f.refresh.hash, now: T + 103 })).toEqual({ active: false });
    expect(await undo()).toEqual({ ok: true });
    // The last one restored it: after the reuse window it refreshes as the current token, revoking nothing.
    expect(await f.stub.status({ refresh_hash: f.refresh.hash, now: T + 103 })).toMatchObject({ active: true });
    expect((await rotate(f, f.refresh, T + 100 + LIFETIMES.reuse_window + 60)).result).toEqual({ ok: true, data: f.data, retry: false });
    expect(await undo()).toEqual({ ok: false, reason: "changed" });
  });

  it("the retry window ends reuse_window seconds after the rotation: a later retry is reuse and revokes", async () => {
    const f = await active();
    await rotate(f, f.refresh, T + 100);
    expect((await rotate(f, f.refresh, T + 100 + LIFETIMES.reuse_window)).result).toEqual({ ok: false, reason: "reused" });
    expect(await f.stub.status({ now: T + 131 })).toEqual({ active: false });
  });

  it("reuse_window 0 disables retries: presenting the rotated token again, even in the same second, is reuse", async () => {
    const f = await active({ lifetimes: { reuse_window: 0 } });
    const first = await rotate(f, f.refresh, T + 100);
    expect((await rotate(f, f.refresh, T + 100)).result).toEqual({ ok: false, reason: "reused" });
    expect((await rotate(f, first.successor, T + 101)).result).toEqual({ ok: false, reason: "revoked" });
  });

  it("once the successor was used, presenting the older token is reuse: the whole family is revoked", async () => {
    const f = await active();
    const second = await rotate(f, f.refresh, T + 100);
    const third = await rotate(f, second.successor, T + 105);
    expect(third.result).toMatchObject({ ok: true, retry: false });
    expect((await rotate(f, f.refresh, T + 110)).result).toEqual({ ok: false, reason: "reused" });
    expect(await f.stub.status({ refresh_hash: third.successor.hash, now: T + 111 })).toEqual({ active: false });
    expect(await f.stub.status({ now: T + 111 })).toEqual({ active: false });
    expect((await rotate(f, third.successor, T + 112)).result).toEqual({ ok: false, reason: "revoked" });
    expect(((await snapshot(f.stub)).grant as { revoked_reason: string }).revoked_reason).toBe("refresh_token_reused");
  });

  it("keeps retired tokens in a ring of small records, so a rotation does not grow with the family's age", async () => {
    const f = await active();
    let presented: Handle = f.refresh;
    for (let i = 0; i < 5; i++) {
      const next = await rotate(f, presented, T + 100 + i);
      expect(next.result).toMatchObject({ ok: true, retry: false });
      presented = next.successor;
    }
    // Five rotations: the first four presented tokens are retired (the fifth is the rotated one).
    expect(await storageKeys(f.stub)).toEqual({
      keys: ["grant", "previous:0", "previous:1", "previous:2", "previous:3"],
      alarm: (T + 1 + LIFETIMES.idle_ttl) * 1000,
    });
    expect((await snapshot(f.stub)).grant).toMatchObject({ retired: 4 });
    // The very first token, four rotations back, is still recognised as reuse.
    expect((await rotate(f, f.refresh, T + 200)).result).toEqual({ ok: false, reason: "reused" });
    expect(await f.stub.status({ now: T + 201 })).toEqual({ active: false });
  });

  it("answers client_mismatch to another client and revokes nothing, even for a former token", async () => {
    const f = await active();
    const second = await rotate(f, f.refresh, T + 100);
    const before = await snapshot(f.stub);
    expect((await rotate(f, second.successor, T + 101, OTHER_CLIENT)).result).toEqual({ ok: false, reason: "client_mismatch" });
    expect((await rotate(f, f.refresh, T + 200, OTHER_CLIENT)).result).toEqual({ ok: false, reason: "client_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    expect((await rotate(f, second.successor, T + 201)).result).toEqual({ ok: true, data: f.data, retry: false });
  });

  it("expires a token unused for idle_ttl (now - last_used_at >= idle_ttl), without revoking", async () => {
    const f = await active();
    const second = await rotate(f, f.refresh, T + 1000);
    const idleEnd = T + 1000 + LIFETIMES.idle_ttl;
    expect(await f.stub.status({ refresh_hash: second.successor.hash, now: idleEnd })).toEqual({ active: false });
    expect((await rotate(f, second.successor, idleEnd)).result).toEqual({ ok: false, reason: "expired" });
    expect((await snapshot(f.stub)).grant).toMatchObject({ state: "active" });
    expect((await rotate(f, second.successor, idleEnd - 1)).result).toEqual({ ok: true, data: f.data, retry: false });
  });

  it("expires the whole family at expires_at, however recently it was used", async () => {
    const f = await active({ lifetimes: { expires_at: T + 3600 } });
    const second = await rotate(f, f.refresh, T + 3599);
    expect(second.result).toMatchObject({ ok: true, retry: false });
    expect(await f.stub.status({ refresh_hash: second.successor.hash, now: T + 3599 })).toMatchObject({ active: true, refresh: { exp: T + 3600 } });
    expect((await rotate(f, second.successor, T + 3600)).result).toEqual({ ok: false, reason: "expired" });
    expect(await f.stub.status({ now: T + 3600 })).toEqual({ active: false });
    // The family's end lies within ALARM_SLACK of the code's expiry, where the alarm still is; it re-arms there.
    expect((await snapshot(f.stub)).alarm).toBe((T + CODE_TTL) * 1000);
    setClock(() => (T + CODE_TTL) * 1000);
    expect(await runDurableObjectAlarm(f.stub)).toBe(true);
    expect((await snapshot(f.stub)).alarm).toBe((T + 3600) * 1000);
  });

  it("answers unknown for a token the family never had, and revokes nothing", async () => {
    const f = await active();
    const before = await snapshot(f.stub);
    const stranger = await mintHandle("refresh", f.objectId);
    expect((await rotate(f, stranger, T + 10)).result).toEqual({ ok: false, reason: "unknown" });
    expect(await snapshot(f.stub)).toEqual(before);
    const empty = env.GRANTS.get(env.GRANTS.newUniqueId());
    expect(await empty.refresh({ token_hash: f.refresh.hash, client_id: CLIENT, successor_hash: "s", sealed_successor: "x.y", resource: [], now: T })).toEqual({
      ok: false,
      reason: "unknown",
    });
    expect((await rotate(f, f.refresh, T + 11)).result).toMatchObject({ ok: true, retry: false });
  });
});

describe("DPoP guards (RFC 9449 §5, §10): a wrong key changes nothing and revokes nothing", () => {
  const KEY_A = "a".repeat(43);
  const KEY_B = "b".repeat(43);

  it("a code issued with dpop_jkt redeems only with a proof by that key", async () => {
    const f = await pending({ dpop_jkt: KEY_A });
    const before = await snapshot(f.stub);
    expect(await f.stub.redeemCode({ ...(await redemption(f)), dpop_jkt: KEY_B })).toEqual({ ok: false, reason: "dpop_jkt_mismatch" });
    expect(await f.stub.redeemCode(await redemption(f))).toEqual({ ok: false, reason: "dpop_jkt_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    expect(await f.stub.redeemCode({ ...(await redemption(f)), dpop_jkt: KEY_A })).toEqual({ ok: true, data: f.data, refresh_issued: false });
  });

  it("a replay of a dpop_jkt code with the wrong key is not a replay: nothing is revoked", async () => {
    const f = await pending({ dpop_jkt: KEY_A });
    const refresh = await mintHandle("refresh", f.objectId);
    expect(await f.stub.redeemCode({ ...(await redemption(f, T + 1, refresh.hash)), dpop_jkt: KEY_A })).toMatchObject({ ok: true });
    const before = await snapshot(f.stub);
    expect(await f.stub.redeemCode({ ...(await redemption(f, T + 2)), dpop_jkt: KEY_B })).toEqual({ ok: false, reason: "dpop_jkt_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    expect(await f.stub.status({ refresh_hash: refresh.hash, now: T + 3 })).toMatchObject({ active: true });
  });

  it("bind_refresh_to_key binds the family: every refresh needs that key, and a wrong one is refused before reuse detection", async () => {
    const f = await pending();
    const refresh = await mintHandle("refresh", f.objectId);
    expect(await f.stub.redeemCode({ ...(await redemption(f, T + 1, refresh.hash)), dpop_jkt: KEY_A, bind_refresh_to_key: true })).toMatchObject({
      ok: true,
    });
    expect((await snapshot(f.stub)).grant).toMatchObject({ dpop_jkt: KEY_A });
    const second = await rotate(f, refresh, T + 10, CLIENT, KEY_A);
    expect(second.result).toEqual({ ok: true, data: f.data, retry: false });
    const before = await snapshot(f.stub);
    expect((await rotate(f, second.successor, T + 11, CLIENT, KEY_B)).result).toEqual({ ok: false, reason: "dpop_key_mismatch" });
    expect((await rotate(f, second.successor, T + 11)).result).toEqual({ ok: false, reason: "dpop_key_mismatch" });
    // Inside the reuse window, and after it (where it would be reuse): still only a mismatch, nothing revoked.
    expect((await rotate(f, refresh, T + 12, CLIENT, KEY_B)).result).toEqual({ ok: false, reason: "dpop_key_mismatch" });
    expect((await rotate(f, refresh, T + 100, CLIENT, KEY_B)).result).toEqual({ ok: false, reason: "dpop_key_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    expect((await rotate(f, refresh, T + 12, CLIENT, KEY_A)).result).toMatchObject({ ok: true, retry: true });
    expect((await rotate(f, second.successor, T + 13, CLIENT, KEY_A)).result).toEqual({ ok: true, data: f.data, retry: false });
  });

  it("without bind_refresh_to_key (a confidential client) the family is not bound, whatever key the redemption proved", async () => {
    const f = await pending();
    const refresh = await mintHandle("refresh", f.objectId);
    expect(await f.stub.redeemCode({ ...(await redemption(f, T + 1, refresh.hash)), dpop_jkt: KEY_A })).toMatchObject({ ok: true });
    expect((await snapshot(f.stub)).grant).not.toHaveProperty("dpop_jkt");
    const second = await rotate(f, refresh, T + 10, CLIENT, KEY_B);
    expect(second.result).toMatchObject({ ok: true, retry: false });
    expect((await rotate(f, second.successor, T + 11)).result).toMatchObject({ ok: true, retry: false });
  });

  it("bind_refresh_to_key without a proof binds nothing", async () => {
    const f = await pending();
    const refresh = await mintHandle("refresh", f.objectId);
    expect(await f.stub.redeemCode({ ...(await redemption(f, T + 1, refresh.hash)), bind_refresh_to_key: true })).toMatchObject({ ok: true });
    expect((await rotate(f, refresh, T + 10, CLIENT, KEY_B)).result).toMatchObject({ ok: true, retry: false });
  });
});

describe("revocation (RFC 7009)", () => {
  it("revokeRefreshToken by the owning client revokes the grant; a token of the family from another client changes nothing", async () => {
    const f = await active();
    const second = await rotate(f, f.refresh, T + 10);
    const before = await snapshot(f.stub);
    expect(await f.stub.revokeRefreshToken({ token_hash: second.successor.hash, client_id: OTHER_CLIENT })).toEqual({ ok: false, reason: "client_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    const stranger = await mintHandle("refresh", f.objectId);
    expect(await f.stub.revokeRefreshToken({ token_hash: stranger.hash, client_id: CLIENT })).toEqual({ ok: false, reason: "unknown" });
    expect(await f.stub.revokeRefreshToken({ token_hash: f.refresh.hash, client_id: CLIENT })).toEqual({ ok: true });
    expect(await f.stub.status({ now: T + 11 })).toEqual({ active: false });
    expect((await rotate(f, second.successor, T + 12)).result).toEqual({ ok: false, reason: "revoked" });
    expect(((await snapshot(f.stub)).grant as { revoked_reason: string }).revoked_reason).toBe("revoked_by_client");
  });

  it("revokeRefreshToken again after revocation still answers ok (RFC 7009 §2.2)", async () => {
    const f = await active();
    expect(await f.stub.revokeRefreshToken({ token_hash: f.refresh.hash, client_id: CLIENT })).toEqual({ ok: true });
    expect(await f.stub.revokeRefreshToken({ token_hash: f.refresh.hash, client_id: CLIENT })).toEqual({ ok: true });
  });

  it("revokeAccessToken denies that jti until its exp; other jtis and the grant stay active", async () => {
    const f = await active();
    expect(await f.stub.revokeAccessToken({ jti: "at-1", exp: T + 600, client_id: OTHER_CLIENT, now: T + 5 })).toEqual({
      ok: false,
      reason: "client_mismatch",
    });
    expect(await f.stub.status({ jti: "at-1", now: T + 6 })).toEqual({ active: true, data: f.data });
    expect(await f.stub.revokeAccessToken({ jti: "at-1", exp: T + 600, client_id: CLIENT, now: T + 5 })).toEqual({ ok: true });
    expect(await f.stub.status({ jti: "at-1", now: T + 6 })).toEqual({ active: false });
    expect(await f.stub.status({ jti: "at-2", now: T + 6 })).toEqual({ active: true, data: f.data });
    expect(await f.stub.status({ refresh_hash: f.refresh.hash, now: T + 6 })).toMatchObject({ active: true });
    // Entries are dropped once their token has expired anyway.
    expect(await f.stub.revokeAccessToken({ jti: "at-3", exp: T + 1200, client_id: CLIENT, now: T + 600 })).toEqual({ ok: true });
    expect(((await snapshot(f.stub)).grant as { revoked_jtis: unknown }).revoked_jtis).toEqual({ "at-3": T + 1200 });
    const empty = env.GRANTS.get(env.GRANTS.newUniqueId());
    expect(await empty.revokeAccessToken({ jti: "at-1", exp: T + 600, client_id: CLIENT, now: T })).toEqual({ ok: false, reason: "unknown" });
  });

  it("revoke() ends an active grant with its reason and is idempotent; on an empty object it leaves only its mark", async () => {
    const f = await active();
    expect(await f.stub.revoke("owner_deleted")).toEqual({ ok: true });
    expect(await f.stub.revoke("second_reason")).toEqual({ ok: true });
    expect((await snapshot(f.stub)).grant).toMatchObject({ state: "revoked", revoked_reason: "owner_deleted" });
    expect(await f.stub.status({ now: T + 2 })).toEqual({ active: false });
    expect((await rotate(f, f.refresh, T + 3)).result).toEqual({ ok: false, reason: "revoked" });
    const empty = env.GRANTS.get(env.GRANTS.newUniqueId());
    expect(await empty.revoke("x")).toEqual({ ok: true });
    expect(await storageKeys(empty)).toEqual({ keys: ["revoked-before-creation"], alarm: expect.any(Number) });
  });

  it("revoke() of a pending grant makes its code answer revoked", async () => {
    const f = await pending();
    await f.stub.revoke("owner_deleted");
    expect(await f.stub.redeemCode(await redemption(f))).toEqual({ ok: false, reason: "revoked" });
  });
});

describe("a revocation before the grant exists (its owner deleted between indexing and creation)", () => {
  it("refuses the creation that follows, and its mark goes with the alarm", async () => {
    const id = env.GRANTS.newUniqueId();
    const stub = env.GRANTS.get(id);
    expect(await stub.revoke("user_deleted")).toEqual({ ok: true });
    const data: GrantData = { client_id: CLIENT, sub: "usr_gone", scope: ["mcp:read"], resources: [], auth_time: T, amr: ["pwd"], refresh: true };
    expect(await stub.createActive({ data, refresh_hash: "h", lifetimes: LIFETIMES, now: T })).toEqual({ ok: false, reason: "revoked" });
    const code = { hash: "c", expires_at: T + 60, code_challenge: "x", redirect_uri: REDIRECT_URI };
    expect(await stub.create({ data, code, lifetimes: LIFETIMES, now: T })).toEqual({ ok: false, reason: "revoked" });
    expect(await stub.status({ now: T })).toEqual({ active: false });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await storageKeys(stub)).keys).toEqual([]);
  });
});

describe("alarm: expiry deletes the record", () => {
  it("before the code expires, the alarm re-arms itself and keeps the grant", async () => {
    const f = await pending();
    setClock(() => (T + CODE_TTL - 1) * 1000);
    expect(await runDurableObjectAlarm(f.stub)).toBe(true);
    expect(await storageKeys(f.stub)).toEqual({ keys: ["grant"], alarm: (T + CODE_TTL) * 1000 });
    expect(await f.stub.redeemCode(await redemption(f, T + CODE_TTL - 1))).toMatchObject({ ok: true });
  });

  it("a pending grant's alarm after code expiry deletes its storage and its alarm", async () => {
    const f = await pending();
    setClock(() => (T + CODE_TTL) * 1000);
    expect(await runDurableObjectAlarm(f.stub)).toBe(true);
    expect(await storageKeys(f.stub)).toEqual({ keys: [], alarm: null });
    expect(await f.stub.redeemCode(await redemption(f, T + 1))).toEqual({ ok: false, reason: "unknown" });
  });

  it("an alarm that fires before a family's idle deadline (it was used since) re-arms at the deadline and keeps it", async () => {
    const f = await active();
    const second = await rotate(f, f.refresh, T + 100);
    setClock(() => (T + 1 + LIFETIMES.idle_ttl) * 1000);
    expect(await runDurableObjectAlarm(f.stub)).toBe(true);
    expect(await storageKeys(f.stub)).toEqual({ keys: ["grant"], alarm: (T + 100 + LIFETIMES.idle_ttl) * 1000 });
    expect((await rotate(f, second.successor, T + 1 + LIFETIMES.idle_ttl)).result).toMatchObject({ ok: true, retry: false });
  });

  it("an active family idle for idle_ttl is deleted by its alarm", async () => {
    const f = await active();
    setClock(() => (T + 1 + LIFETIMES.idle_ttl) * 1000);
    expect(await runDurableObjectAlarm(f.stub)).toBe(true);
    expect(await storageKeys(f.stub)).toEqual({ keys: [], alarm: null });
    expect((await rotate(f, f.refresh, T + 2)).result).toEqual({ ok: false, reason: "unknown" });
  });

  it("a revoked grant is kept until the family's end, then deleted", async () => {
    const f = await active();
    await f.stub.revoke("owner_deleted");
    setClock(() => (LIFETIMES.expires_at - 1) * 1000);
    expect(await runDurableObjectAlarm(f.stub)).toBe(true);
    expect(await storageKeys(f.stub)).toEqual({ keys: ["grant"], alarm: LIFETIMES.expires_at * 1000 });
    setClock(() => LIFETIMES.expires_at * 1000);
    expect(await runDurableObjectAlarm(f.stub)).toBe(true);
    expect(await storageKeys(f.stub)).toEqual({ keys: [], alarm: null });
  });
});

describe("concurrency: input gates make each transition atomic", () => {
  it("20 simultaneous valid redemptions: exactly one succeeds, the first replay revokes, the rest find it revoked", async () => {
    const f = await pending();
    const refresh = await mintHandle("refresh", f.objectId);
    const input = await redemption(f, T + 1, refresh.hash);
    const results = await Promise.all(Array.from({ length: 20 }, () => f.stub.redeemCode(input)));
    const reasons = results.map((r) => (r.ok ? "ok" : r.reason)).sort();
    expect(reasons).toEqual(["ok", "replayed", ...Array(18).fill("revoked")].sort());
    // OAuth 2.1 §4.1.3: the tokens issued to the winner are revoked too.
    expect(await f.stub.status({ refresh_hash: refresh.hash, now: T + 2 })).toEqual({ active: false });
    expect(await f.stub.status({ now: T + 2 })).toEqual({ active: false });
    expect((await snapshot(f.stub)).grant).toMatchObject({ state: "revoked", revoked_reason: "authorization_code_replayed" });
  });

  it("20 simultaneous refreshes with the current token: one rotation, 19 retries with the same successor, grant still usable", async () => {
    const f = await active();
    const successors = await Promise.all(Array.from({ length: 20 }, () => mintHandle("refresh", f.objectId)));
    const sealed = await Promise.all(successors.map((s) => sealSuccessor(f.refresh.token, s.token)));
    const results = await Promise.all(
      successors.map((s, i) =>
        f.stub.refresh({
          token_hash: f.refresh.hash,
          client_id: CLIENT,
          successor_hash: s.hash,
          sealed_successor: sealed[i] as string,
          resource: [],
          now: T + 50,
        }),
      ),
    );
    const winners = results.flatMap((r, i) => (r.ok && !r.retry ? [i] : []));
    expect(winners).toHaveLength(1);
    const w = winners[0] as number;
    const winner = successors[w] as Handle;
    for (const [i, r] of results.entries()) {
      if (i !== w) expect(r).toEqual({ ok: true, data: f.data, retry: true, sealed_successor: sealed[w], successor_hash: winner.hash });
    }
    expect(await openSuccessor(f.refresh.token, sealed[w] as string)).toBe(winner.token);
    expect(await f.stub.status({ refresh_hash: winner.hash, now: T + 51 })).toMatchObject({ active: true });
    expect((await rotate(f, winner, T + 60)).result).toEqual({ ok: true, data: f.data, retry: false });
  });
});

describe("createActive (CIBA, device): the family bound to keys as a redemption binds it", () => {
  const KEY_A = "a".repeat(43);
  const KEY_B = "b".repeat(43);
  const INSTANCE_A = "c".repeat(43);
  const INSTANCE_B = "d".repeat(43);

  /** An active grant made by createActive at T, with a refresh token unless `refresh: false`. */
  async function approved(opts: { refresh?: boolean; dpop_jkt?: string; instance_jkt?: string }): Promise<Fixture & { refresh: Handle }> {
    const id = env.GRANTS.newUniqueId();
    const stub = env.GRANTS.get(id);
    const objectId = id.toString();
    const refresh = await mintHandle("refresh", objectId);
    const data: GrantData = {
      client_id: CLIENT,
      sub: "usr_alice",
      scope: ["mcp:read", "offline_access"],
      resources: ["http://localhost:8788/mcp"],
      auth_time: T - 5,
      amr: ["pwd"],
      refresh: opts.refresh ?? true,
    };
    const { dpop_jkt, instance_jkt } = opts;
    expect(await stub.createActive({ data, refresh_hash: refresh.hash, dpop_jkt, instance_jkt, lifetimes: LIFETIMES, now: T })).toEqual({ ok: true });
    return { stub, objectId, code: refresh, verifier: "", data, refresh };
  }

  /** GrantObject.refresh of `presented` with the keys the request proved. */
  async function refreshWith(f: Fixture, presented: Handle, now: number, keys: { dpop_jkt?: string; instance_jkt?: string }) {
    const successor = await mintHandle("refresh", f.objectId);
    const sealed_successor = await sealSuccessor(presented.token, successor.token);
    return f.stub.refresh({ token_hash: presented.hash, client_id: CLIENT, successor_hash: successor.hash, sealed_successor, ...keys, resource: [], now });
  }

  it("dpop_jkt binds the family: a refresh with another key or none is refused and changes nothing; the key refreshes", async () => {
    const f = await approved({ dpop_jkt: KEY_A });
    expect((await snapshot(f.stub)).grant).toMatchObject({ state: "active", dpop_jkt: KEY_A });
    const before = await snapshot(f.stub);
    expect(await refreshWith(f, f.refresh, T + 10, { dpop_jkt: KEY_B })).toEqual({ ok: false, reason: "dpop_key_mismatch" });
    expect(await refreshWith(f, f.refresh, T + 10, {})).toEqual({ ok: false, reason: "dpop_key_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    expect(await refreshWith(f, f.refresh, T + 11, { dpop_jkt: KEY_A })).toEqual({ ok: true, data: f.data, retry: false });
  });

  it("instance_jkt binds the family to the Client Instance Key: another instance's attestation is refused and changes nothing", async () => {
    const f = await approved({ instance_jkt: INSTANCE_A });
    expect((await snapshot(f.stub)).grant).toMatchObject({ state: "active", instance_jkt: INSTANCE_A });
    const before = await snapshot(f.stub);
    expect(await refreshWith(f, f.refresh, T + 10, { instance_jkt: INSTANCE_B })).toEqual({ ok: false, reason: "instance_key_mismatch" });
    expect(await refreshWith(f, f.refresh, T + 10, {})).toEqual({ ok: false, reason: "instance_key_mismatch" });
    expect(await snapshot(f.stub)).toEqual(before);
    expect(await refreshWith(f, f.refresh, T + 11, { instance_jkt: INSTANCE_A })).toEqual({ ok: true, data: f.data, retry: false });
  });

  it("both keys bind together, each refused on its own; a grant without refresh tokens stores neither", async () => {
    const f = await approved({ dpop_jkt: KEY_A, instance_jkt: INSTANCE_A });
    expect(await refreshWith(f, f.refresh, T + 10, { dpop_jkt: KEY_A })).toEqual({ ok: false, reason: "instance_key_mismatch" });
    expect(await refreshWith(f, f.refresh, T + 10, { instance_jkt: INSTANCE_A })).toEqual({ ok: false, reason: "dpop_key_mismatch" });
    expect(await refreshWith(f, f.refresh, T + 11, { dpop_jkt: KEY_A, instance_jkt: INSTANCE_A })).toMatchObject({ ok: true, retry: false });
    const noRefresh = await approved({ refresh: false, dpop_jkt: KEY_A, instance_jkt: INSTANCE_A });
    const { grant } = await snapshot(noRefresh.stub);
    expect(grant).toMatchObject({ state: "active", refresh: null });
    expect(grant).not.toHaveProperty("dpop_jkt");
    expect(grant).not.toHaveProperty("instance_jkt");
  });
});
