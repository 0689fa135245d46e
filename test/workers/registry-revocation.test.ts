import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { REVOKE_PAGE } from "../../durable-objects/registry-revocation";
import type { GrantData } from "../../schemas/grant";
import { registry } from "../../workers/clients/cache";

/**
 * Deleting an owner (client or user) revokes all its grants (`durable-objects/registry-revocation.ts`): a
 * page at once, the rest by the Registry's alarm, so no invocation makes more Durable Object calls than
 * a plan allows, and no deleted owner is left with live grants.
 */
const T = Math.floor(Date.now() / 1000);
/** The client the grants are for: a record must exist, or the Registry indexes no grant for it. */
const CLIENT = "lk_bulk";

beforeAll(async () => {
  await runInDurableObject(registry(env), (_, state) => state.storage.put(`client:${CLIENT}`, { client_id: CLIENT }));
});

async function userWithGrants(n: number): Promise<{ sub: string; grants: string[] }> {
  const sub = `usr_bulk_${crypto.randomUUID().slice(0, 8)}`;
  const created = await registry(env).createUser({
    id: sub,
    email: `${sub}@example.com`,
    name: "Bulk",
    password: { alg: "PBKDF2-SHA256-CHAIN", iterations: 1, salt: "AA", hash: "AA" },
    created_at: T,
  });
  expect(created).toEqual({ ok: true });
  const grants = await Promise.all(
    Array.from({ length: n }, async () => {
      const id = env.GRANTS.newUniqueId();
      const data: GrantData = { client_id: CLIENT, sub, scope: ["mcp:read"], resources: [], auth_time: T, amr: ["pwd"], refresh: false };
      await env.GRANTS.get(id).createActive({ data, lifetimes: { expires_at: T + 86_400, idle_ttl: 86_400, reuse_window: 30 }, now: T });
      await registry(env).recordGrant({ grant_id: id.toString(), sub, client_id: CLIENT });
      return id.toString();
    }),
  );
  return { sub, grants };
}

const active = (grantId: string) =>
  env.GRANTS.get(env.GRANTS.idFromString(grantId))
    .status({ now: T + 1 })
    .then((s) => s.active);
const marked = (owner: string) => runInDurableObject(registry(env), (_, state) => state.storage.get(`revoking:${owner}`));
const indexed = (owner: string) => runInDurableObject(registry(env), async (_, state) => (await state.storage.list({ prefix: `grant-of:${owner}\n` })).size);

describe("revoking a deleted owner's grants", () => {
  it("revokes a page at once and the rest by alarm, then forgets the owner", async () => {
    const { sub, grants } = await userWithGrants(REVOKE_PAGE + 5);
    expect(await registry(env).deleteUser(sub)).toEqual({ ok: true, revoked_grants: REVOKE_PAGE });
    expect(await marked(`user:${sub}`)).toBe(true);
    expect(await indexed(`user:${sub}`)).toBe(5);
    expect((await Promise.all(grants.map(active))).filter(Boolean)).toHaveLength(5);
    // The alarm is due in a second; run it now (if it already ran by itself, it found the same work).
    await runDurableObjectAlarm(registry(env));
    expect((await Promise.all(grants.map(active))).filter(Boolean)).toHaveLength(0);
    expect(await indexed(`user:${sub}`)).toBe(0);
    expect(await marked(`user:${sub}`)).toBeUndefined();
  });

  it("deletes a user and every consent they remembered, more than one storage call takes (128 keys)", async () => {
    const { sub } = await userWithGrants(0);
    for (let batch = 0; batch < 3; batch++) {
      const audiences = Array.from({ length: 50 }, (_, i) => `https://api-${batch}-${i}.example/`);
      await registry(env).recordGrant({ grant_id: "not-an-object-id", sub, client_id: CLIENT, consent: { holder: CLIENT, audiences, scopes: ["read"] } });
    }
    const consents = () => runInDurableObject(registry(env), async (_, state) => (await state.storage.list({ prefix: `consent:${sub}\n` })).size);
    expect(await consents()).toBe(150);
    expect(await registry(env).deleteUser(sub)).toEqual({ ok: true, revoked_grants: 1 });
    expect(await consents()).toBe(0);
    expect(await registry(env).getUser(sub)).toBeNull();
  });

  it("refuses to index a grant for a user who does not exist, or no longer does", async () => {
    const { sub } = await userWithGrants(0);
    expect(await registry(env).deleteUser(sub)).toEqual({ ok: true, revoked_grants: 0 });
    for (const who of [sub, "usr_never"]) {
      expect(await registry(env).recordGrant({ grant_id: "late", sub: who, client_id: CLIENT })).toEqual({ ok: false, reason: "no_user" });
    }
    expect(await indexed(`user:${sub}`)).toBe(0);
  });

  it("refuses to index a grant for a registered client that no longer exists", async () => {
    const { sub } = await userWithGrants(0);
    expect(await registry(env).recordGrant({ grant_id: "late", sub, client_id: "lk_deleted_meanwhile" })).toEqual({ ok: false, reason: "no_client" });
    // A client_id URL (a metadata document) has no record here, and needs none.
    expect(await registry(env).recordGrant({ grant_id: "cimd", sub, client_id: "https://agent.example/client.json" })).toEqual({ ok: true });
  });

  it("drops an index entry that names no grant object, and finishes", async () => {
    const { sub, grants } = await userWithGrants(1);
    await registry(env).recordGrant({ grant_id: "not-an-object-id", sub, client_id: CLIENT });
    expect(await registry(env).deleteUser(sub)).toEqual({ ok: true, revoked_grants: 2 });
    expect(await active(grants[0] as string)).toBe(false);
    expect(await indexed(`user:${sub}`)).toBe(0);
    expect(await marked(`user:${sub}`)).toBeUndefined();
  });
});
