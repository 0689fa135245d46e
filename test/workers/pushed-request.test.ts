import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { PushedRequest } from "../../durable-objects/pushed-request";
import { setClock } from "../../workers/clock";

/**
 * PushedRequest as the state machine in its header: push, open (binding the first browser), consume,
 * every refusal, and expiry by alarm. Times are real seconds (T) so that the alarms lie in the future.
 */
const T = Math.floor(Date.now() / 1000);
const TTL = 60;
const INTERACTION_TTL = 900;

afterEach(() => setClock());

async function pushedAt(expires_at = T + TTL) {
  const stub = env.PUSHED_REQUESTS.get(env.PUSHED_REQUESTS.newUniqueId());
  expect(await stub.push({ hash: "h", client_id: "c", params: "response_type=code", expires_at })).toEqual({ ok: true });
  return stub;
}

const open = (stub: DurableObjectStub<PushedRequest>, over: Partial<{ hash: string; client_id: string; browser: string; now: number }> = {}) =>
  stub.open({ hash: "h", client_id: "c", browser: "b1", interaction_ttl: INTERACTION_TTL, now: T + 1, ...over });

describe("PushedRequest", () => {
  it("pushes once", async () => {
    const stub = await pushedAt();
    expect(await stub.push({ hash: "h2", client_id: "c", params: "", expires_at: T + TTL })).toEqual({ ok: false, reason: "exists" });
  });

  it("opens for its client and the first browser, again for that browser, never for another", async () => {
    const stub = await pushedAt();
    expect(await open(stub, { hash: "other" })).toEqual({ ok: false, reason: "unknown" });
    // A wrong client changes nothing: the request is still free for its first browser.
    expect(await open(stub, { client_id: "other", browser: "b2" })).toEqual({ ok: false, reason: "client_mismatch" });
    expect(await open(stub)).toEqual({ ok: true, params: "response_type=code" });
    expect(await open(stub, { now: T + 30 })).toEqual({ ok: true, params: "response_type=code" });
    expect(await open(stub, { browser: "b2" })).toEqual({ ok: false, reason: "other_browser" });
  });

  it("refuses to open after expires_at", async () => {
    const stub = await pushedAt();
    expect(await open(stub, { now: T + TTL })).toEqual({ ok: false, reason: "expired" });
  });

  it("is consumed once, by the browser that opened it, until the interaction ends", async () => {
    const stub = await pushedAt();
    expect(await stub.consume({ hash: "h", browser: "b1", now: T + 1 })).toEqual({ ok: false, reason: "unknown" });
    await open(stub);
    expect(await stub.consume({ hash: "x", browser: "b1", now: T + 2 })).toEqual({ ok: false, reason: "unknown" });
    expect(await stub.consume({ hash: "h", browser: "b2", now: T + 2 })).toEqual({ ok: false, reason: "other_browser" });
    // After expires_at, but within the interaction's lifetime from the open: a slow sign-in still finishes.
    expect(await stub.consume({ hash: "h", browser: "b1", now: T + TTL + 300 })).toEqual({ ok: true });
    expect(await stub.consume({ hash: "h", browser: "b1", now: T + TTL + 301 })).toEqual({ ok: false, reason: "used" });
    expect(await open(stub)).toEqual({ ok: false, reason: "used" });
  });

  it("cannot be consumed once the interaction has ended", async () => {
    const stub = await pushedAt();
    await open(stub);
    expect(await stub.consume({ hash: "h", browser: "b1", now: T + 1 + INTERACTION_TTL })).toEqual({ ok: false, reason: "expired" });
  });

  it("lasts until the interaction of the latest reload ends", async () => {
    const stub = await pushedAt();
    await open(stub);
    await open(stub, { now: T + 30 });
    expect(await stub.consume({ hash: "h", browser: "b1", now: T + 30 + INTERACTION_TTL - 1 })).toEqual({ ok: true });
  });

  it("gives exactly one success to 20 simultaneous consumes", async () => {
    const stub = await pushedAt();
    await open(stub);
    const results = await Promise.all(Array.from({ length: 20 }, () => stub.consume({ hash: "h", browser: "b1", now: T + 2 })));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
  });

  it("is deleted by alarm at expires_at when never opened, or at the end of the interaction when opened", async () => {
    const never = await pushedAt();
    setClock(() => (T + TTL) * 1000);
    expect(await runDurableObjectAlarm(never)).toBe(true);
    expect(await runInDurableObject(never, (_o: PushedRequest, state) => state.storage.get("request"))).toBeUndefined();
    expect(await open(never)).toEqual({ ok: false, reason: "unknown" });

    const opened = await pushedAt();
    await open(opened);
    // At expires_at the opened request is kept: the alarm re-arms for the interaction's end.
    expect(await runDurableObjectAlarm(opened)).toBe(true);
    expect(await runInDurableObject(opened, async (_o: PushedRequest, state) => [await state.storage.get("request"), await state.storage.getAlarm()])).toEqual([
      expect.objectContaining({ browser: "b1" }),
      (T + 1 + INTERACTION_TTL) * 1000,
    ]);
    setClock(() => (T + 1 + INTERACTION_TTL) * 1000);
    expect(await runDurableObjectAlarm(opened)).toBe(true);
    expect(await runInDurableObject(opened, (_o: PushedRequest, state) => state.storage.get("request"))).toBeUndefined();
  });
});
