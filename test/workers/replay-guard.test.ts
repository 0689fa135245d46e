import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { ReplayGuard } from "../../durable-objects/replay-guard";
import { setClock } from "../../workers/clock";
import { claimOnce } from "../../workers/replay";

afterEach(() => setClock());

describe("ReplayGuard", () => {
  it("lets an id be claimed once until it expires", async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName("t1"));
    expect(await stub.claim({ id: "a", exp: 1000, now: 900 })).toEqual({ ok: true });
    expect(await stub.claim({ id: "a", exp: 1000, now: 999 })).toEqual({ ok: false, reason: "replayed" });
    expect(await stub.claim({ id: "b", exp: 1000, now: 999 })).toEqual({ ok: true });
    // Once expired, the record protects nothing and the id may be claimed again.
    expect(await stub.claim({ id: "a", exp: 2000, now: 1000 })).toEqual({ ok: true });
  });

  it("says whether an id is recorded and unexpired, writing nothing", async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName("t-seen"));
    const t = Math.floor(Date.now() / 1000);
    expect(await stub.seen({ id: "a", now: t })).toBe(false);
    await stub.claim({ id: "a", exp: t + 100, now: t });
    expect(await stub.seen({ id: "a", now: t + 99 })).toBe(true);
    expect(await stub.seen({ id: "a", now: t + 100 })).toBe(false);
    expect(await stub.seen({ id: "b", now: t })).toBe(false);
    const rows = await runInDurableObject(stub, (_o: ReplayGuard, state) => state.storage.sql.exec<{ id: string }>("SELECT id FROM seen").toArray());
    expect(rows).toEqual([{ id: "a" }]);
  });

  it("forgets a released id at once, so it may be claimed again", async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName("t-release"));
    const t = Math.floor(Date.now() / 1000);
    await stub.claim({ id: "a", exp: t + 100, now: t });
    await stub.claim({ id: "b", exp: t + 100, now: t });
    expect(await stub.release({ id: "a" })).toEqual({ ok: true });
    expect(await stub.claim({ id: "a", exp: t + 100, now: t })).toEqual({ ok: true });
    expect(await stub.claim({ id: "b", exp: t + 100, now: t })).toEqual({ ok: false, reason: "replayed" });
  });

  it("gives exactly one success to 20 simultaneous claims", async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName("t2"));
    const results = await Promise.all(Array.from({ length: 20 }, () => stub.claim({ id: "same", exp: 5000, now: 1 })));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
  });

  it("forgets expired ids by alarm", async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName("t3"));
    const t = Math.floor(Date.now() / 1000);
    await stub.claim({ id: "x", exp: t + 10, now: t });
    await stub.claim({ id: "y", exp: t + 100, now: t });
    setClock(() => (t + 50) * 1000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const rows = await runInDurableObject(stub, (_o: ReplayGuard, state) => state.storage.sql.exec<{ id: string }>("SELECT id FROM seen").toArray());
    expect(rows).toEqual([{ id: "y" }]);
    expect(await stub.claim({ id: "y", exp: t + 100, now: t + 50 })).toEqual({ ok: false, reason: "replayed" });
    // The alarm wakes at the earliest expiry it knows of: re-armed for y, moved earlier by z, not later by w.
    const alarm = () => runInDurableObject(stub, (_o: ReplayGuard, state) => state.storage.getAlarm());
    expect(await alarm()).toBe((t + 100) * 1000);
    await stub.claim({ id: "z", exp: t + 60, now: t + 50 });
    expect(await alarm()).toBe((t + 60) * 1000);
    await stub.claim({ id: "w", exp: t + 500, now: t + 50 });
    expect(await alarm()).toBe((t + 60) * 1000);
  });

  it("claimOnce keeps namespaces apart", async () => {
    const t = Math.floor(Date.now() / 1000);
    expect(await claimOnce(env, "dpop", "j1", t + 60, t)).toBe(true);
    expect(await claimOnce(env, "dpop", "j1", t + 60, t)).toBe(false);
    expect(await claimOnce(env, "client-assertion", "j1", t + 60, t)).toBe(true);
  });
});
