import type { AttestationPolicy, Attester } from "../schemas/attestation";
import type { Client } from "../schemas/client";
import type { Resource } from "../schemas/resource";
import type { RegistryCache } from "./registry-cache";

/**
 * The Registry's attestation transitions, as functions over its storage (the class in `registry.ts`
 * exposes them): trusted attesters, and attestation policy kept on client and resource records. Each
 * reads and writes storage until its last step, the write-through to the KV cache (`registry-cache.ts`),
 * so input gates make each one atomic.
 *
 * Storage keys:
 *   attester:{id}              → Attester      attester-iss:{issuer} → id
 * KV (CLIENT_CACHE):
 *   attesters                  → Attester[]    the whole list: small (at most MAX_ATTESTERS), and one
 *                                              key means an unknown issuer is answered from cache too
 */

/** How many attesters may be configured; the list is read whole on the hot path. */
export const MAX_ATTESTERS = 50;

export type CreateAttesterResult = { ok: true } | { ok: false; reason: "exists" | "too_many" };

export async function listAttesterRecords(storage: DurableObjectStorage): Promise<Attester[]> {
  return [...(await storage.list<Attester>({ prefix: "attester:" })).values()].sort((a, b) => a.created_at - b.created_at);
}

/** Adds a trusted attester; its issuer must be new. */
export async function createAttesterRecord(storage: DurableObjectStorage, cache: RegistryCache, attester: Attester): Promise<CreateAttesterResult> {
  const issKey = `attester-iss:${attester.issuer}`;
  if (await storage.get(issKey)) return { ok: false, reason: "exists" };
  if ((await storage.list({ prefix: "attester:" })).size >= MAX_ATTESTERS) return { ok: false, reason: "too_many" };
  await storage.put({ [`attester:${attester.id}`]: attester, [issKey]: attester.id });
  await cache.publish("attesters");
  return { ok: true };
}

/** Removes a trusted attester: its attestations stop counting within the cache bound. */
export async function deleteAttesterRecord(
  storage: DurableObjectStorage,
  cache: RegistryCache,
  id: string,
): Promise<{ ok: true } | { ok: false; reason: "not_found" }> {
  const attester = await storage.get<Attester>(`attester:${id}`);
  if (!attester) return { ok: false, reason: "not_found" };
  await storage.delete([`attester:${id}`, `attester-iss:${attester.issuer}`]);
  await cache.publish("attesters");
  return { ok: true };
}

export type PolicyTarget = { kind: "client"; client_id: string } | { kind: "resource"; id: string };
export type SetPolicyResult = { ok: true; cache_key: `client:${string}` | `resource-uri:${string}` } | { ok: false; reason: "not_found" };

/** Sets (or, with null, removes) the attestation policy on a client or resource record, writing through to KV. */
export async function setPolicyRecord(
  storage: DurableObjectStorage,
  cache: RegistryCache,
  target: PolicyTarget,
  policy: AttestationPolicy | null,
): Promise<SetPolicyResult> {
  if (target.kind === "client") {
    const key = `client:${target.client_id}` as const;
    const client = await storage.get<Client>(key);
    if (!client) return { ok: false, reason: "not_found" };
    const { attestation_policy: _old, ...rest } = client;
    const next: Client = policy ? { ...rest, attestation_policy: policy } : rest;
    await storage.put(key, next);
    await cache.publish(key);
    return { ok: true, cache_key: key };
  }
  const resource = await storage.get<Resource>(`resource:${target.id}`);
  if (!resource) return { ok: false, reason: "not_found" };
  const { attestation_policy: _old, ...rest } = resource;
  const next: Resource = policy ? { ...rest, attestation_policy: policy } : rest;
  await storage.put(`resource:${target.id}`, next);
  const cacheKey = `resource-uri:${resource.resource}` as const;
  await cache.publish(cacheKey);
  return { ok: true, cache_key: cacheKey };
}
