import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RETRY_AFTER, RegistryCache } from "../../durable-objects/registry-cache";
import { clearMemoryCache, findClient, registry } from "../../workers/clients/cache";
import { kvKey } from "../../workers/clients/kv-key";
import { setClock } from "../../workers/clock";
import { adminCall, basic, createClient, expectError, MCP_RESOURCE, postForm } from "./helpers";

/**
 * The Registry's write-through to the KV cache (`durable-objects/registry-cache.ts`): writes of one key
 * happen one after another and write what storage holds when they run, so a fill after a cache miss
 * that races a change (a deletion, an update) never leaves the old record in KV.
 */

/** A KV namespace whose first put waits until `open()` (a slow write); records each operation when it completes. */
function gatedKv() {
  const store = new Map<string, string>();
  const done: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let waiting = 0;
  let deletes = 0;
  const kv = {
    async put(key: string, value: string) {
      if (++waiting === 1) await gate;
      store.set(key, value);
      done.push(`put ${key} ${value}`);
    },
    async delete(key: string) {
      deletes++;
      store.delete(key);
      done.push(`delete ${key}`);
    },
  };
  return { kv: kv as unknown as KVNamespace, store, done, open: () => release(), waiting: () => waiting, deletes: () => deletes };
}

/** Runs `fn` with the storage of a fresh Durable Object (a GrantObject's: only its storage is used). */
function withStorage(fn: (storage: DurableObjectStorage) => Promise<void>): Promise<void> {
  return runInDurableObject(env.GRANTS.get(env.GRANTS.newUniqueId()), (_, state) => fn(state.storage));
}

const noAlarm = async () => undefined;

/** Gives other work up to `ms` to make `check` true; says whether it did. */
async function settle(check: () => boolean, ms = 100): Promise<boolean> {
  for (let i = 0; i < ms && !check(); i++) await new Promise((r) => setTimeout(r, 1));
  return check();
}

afterEach(() => {
  setClock();
  vi.restoreAllMocks();
});

describe("RegistryCache", () => {
  it("a deletion's write waits for a fill in flight, so KV ends empty", async () => {
    await withStorage(async (storage) => {
      const { kv, store, done, open, waiting, deletes } = gatedKv();
      const cache = new RegistryCache(storage, kv, noAlarm);
      await storage.put("client:c1", { client_id: "c1" });
      const fill = cache.fill("client:c1");
      expect(await settle(() => waiting() === 1)).toBe(true);
      await storage.delete("client:c1");
      const deletion = cache.publish("client:c1");
      // The deletion's write must not start while the fill's put is still on its way.
      expect(await settle(() => deletes() > 0, 50)).toBe(false);
      open();
      expect(await fill).toEqual({ client_id: "c1" });
      await deletion;
      expect(done).toEqual(['put client:c1 {"client_id":"c1"}', "delete client:c1"]);
      expect(store.has("client:c1")).toBe(false);
    });
  });

  it("an update's write waits for a slow fill in flight, so KV ends with the update", async () => {
    await withStorage(async (storage) => {
      const { kv, store, open, waiting } = gatedKv();
      const cache = new RegistryCache(storage, kv, noAlarm);
      await storage.put("client:c2", { client_id: "c2", v: 1 });
      const fill = cache.fill("client:c2");
      expect(await settle(() => waiting() === 1)).toBe(true);
      await storage.put("client:c2", { client_id: "c2", v: 2 });
      const update = cache.publish("client:c2");
      await settle(() => waiting() === 2, 50);
      open();
      await Promise.all([fill, update]);
      expect(JSON.parse(store.get("client:c2") as string)).toEqual({ client_id: "c2", v: 2 });
    });
  });

  it("a fill writes nothing for an unknown key, nor while a write is under way or just made", async () => {
    await withStorage(async (storage) => {
      const { kv, done, open } = gatedKv();
      const cache = new RegistryCache(storage, kv, noAlarm);
      open();
      expect(await cache.fill("client:nobody")).toBeNull();
      expect(await cache.fill("resource-uri:https://nowhere.example/")).toBeNull();
      await storage.put("client:c3", { client_id: "c3" });
      await cache.fill("client:c3");
      await cache.fill("client:c3");
      expect(done).toEqual(['put client:c3 {"client_id":"c3"}']);
    });
  });

  it("a failed write does not fail the change: the key is marked, the alarm asked for, and the retry writes it", async () => {
    await withStorage(async (storage) => {
      const store = new Map<string, string>();
      let failing = true;
      const kv = {
        async put(key: string, value: string) {
          if (failing) throw new Error("KV PUT failed: 429 Too Many Requests");
          store.set(key, value);
        },
        async delete(key: string) {
          store.delete(key);
        },
      } as unknown as KVNamespace;
      const asked: number[] = [];
      const cache = new RegistryCache(storage, kv, async (at) => void asked.push(at));
      vi.spyOn(console, "warn").mockImplementation(() => undefined);
      const t = Math.floor(Date.now() / 1000);
      setClock(() => t * 1000);
      await storage.put("client:c4", { client_id: "c4" });
      await cache.publish("client:c4");
      expect(await storage.get("cache-dirty:client:c4")).toBe(t);
      expect(asked).toEqual([t + RETRY_AFTER]);
      expect(store.has("client:c4")).toBe(false);
      failing = false;
      await cache.retry();
      expect(JSON.parse(store.get("client:c4") as string)).toEqual({ client_id: "c4" });
      expect(await storage.get("cache-dirty:client:c4")).toBeUndefined();
    });
  });
});

describe("the hot path's cache after a miss", () => {
  it("answers an unknown client_id longer than a KV key may be with invalid_client", async () => {
    await expectError(
      await postForm("/token", { grant_type: "client_credentials" }, { Authorization: basic(`lk_${"z".repeat(700)}`, "secret") }),
      401,
      "invalid_client",
      "client authentication failed",
    );
  });

  it("serves a resource whose URI is longer than a KV key may be, and refuses an unknown long one as invalid_target", async () => {
    const long = `https://api.example/${"x".repeat(700)}`;
    const created = await adminCall("POST", "/resources", { resource: long, name: "Long", scopes_supported: ["long:read"] });
    expect(created.status).toBe(201);
    expect(await env.CLIENT_CACHE.get(await kvKey(`resource-uri:${long}`), "json")).toMatchObject({ resource: long });
    clearMemoryCache();
    const agent = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
    const auth = { Authorization: basic(agent.client_id, agent.client_secret as string) };
    const res = await postForm("/token", { grant_type: "client_credentials", resource: long, scope: "long:read" }, auth);
    const body = (await res.json()) as { access_token: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token).aud).toBe(long);
    const unknown = `${long}/other`;
    await expectError(
      await postForm("/token", { grant_type: "client_credentials", resource: unknown }, auth),
      400,
      "invalid_target",
      `resource ${unknown} is not known to this authorization server`,
    );
  });

  it("the Registry's alarm writes again a key whose write failed", async () => {
    const client = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic", scope: "mcp:read" });
    const key = `client:${client.client_id}`;
    await env.CLIENT_CACHE.delete(key);
    // What a failed write leaves: the marker, and an alarm (run here at once).
    await runInDurableObject(registry(env), async (_, state) => {
      await state.storage.put(`cache-dirty:${key}`, 1);
      await state.storage.setAlarm(Date.now() + 3_600_000);
    });
    expect(await runDurableObjectAlarm(registry(env))).toBe(true);
    expect(await env.CLIENT_CACHE.get(key, "json")).toMatchObject({ client_id: client.client_id });
    expect(await runInDurableObject(registry(env), (_, state) => state.storage.get(`cache-dirty:${key}`))).toBeUndefined();
  });

  it("is filled by the Registry, and a deleted client is neither found nor left in KV", async () => {
    const client = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic", scope: "mcp:read" });
    const key = `client:${client.client_id}`;
    // KV lost the record (the Registry wrote it a while ago): the next miss fills it again.
    await env.CLIENT_CACHE.delete(key);
    clearMemoryCache();
    const later = Date.now() + 61_000;
    setClock(() => later);
    expect(await findClient(env, client.client_id)).toMatchObject({ client_id: client.client_id });
    expect(await env.CLIENT_CACHE.get(key, "json")).toMatchObject({ client_id: client.client_id });
    expect((await adminCall("DELETE", `/clients/${client.client_id}`)).status).toBe(204);
    expect(await env.CLIENT_CACHE.get(key)).toBeNull();
    clearMemoryCache();
    expect(await registry(env).cacheMiss(key as `client:${string}`)).toBeNull();
    expect(await env.CLIENT_CACHE.get(key)).toBeNull();
    await expectError(
      await postForm(
        "/token",
        { grant_type: "client_credentials", resource: MCP_RESOURCE },
        { Authorization: basic(client.client_id, client.client_secret as string) },
      ),
      401,
      "invalid_client",
    );
  });
});
