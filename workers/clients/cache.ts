import type { CacheKey } from "../../durable-objects/registry-cache";
import type { Attester } from "../../schemas/attestation";
import type { Client } from "../../schemas/client";
import type { Resource } from "../../schemas/resource";
import { now } from "../clock";
import { config } from "../config";
import { isClientIdUrl } from "./client-id-url";
import { kvKey } from "./kv-key";
import { resolveMetadataDocument } from "./metadata-document";

/**
 * Read path for registry records on the hot path: isolate memory → KV → the Registry Durable Object.
 * Staleness bound: an isolate keeps a record for CLIENT_CACHE_TTL seconds (default 30) and KV edge
 * caches hold it up to 60 s more; the Registry writes KV through on every change and fills it after a
 * miss, both in order per key (`durable-objects/registry-cache.ts`), so a miss racing a change can never
 * leave an old or deleted record in KV. Deleting a client revokes its grants in their Durable Objects at
 * once, so nothing revocable is decided from the cache.
 */
const memory = new Map<string, { value: unknown; until: number }>();
const MEMORY_MAX = 5000;

/**
 * The Registry is one object for the whole deployment, so what KV does not know reaches it sparingly:
 * a key it answered unknown is remembered for ABSENT_SECONDS, and at most MISSES_PER_SECOND lookups per
 * isolate reach it. Beyond that (made-up client_ids by the thousand) a key KV does not hold counts as
 * unknown. KV holds every record from its creation, so a real one misses KV only in the seconds its write
 * takes to reach a location.
 */
export const ABSENT_SECONDS = 5;
export const MISSES_PER_SECOND = 50;
const misses = { second: 0, count: 0 };

function mayAskRegistry(): boolean {
  const second = now();
  if (second !== misses.second) Object.assign(misses, { second, count: 0 });
  return ++misses.count <= MISSES_PER_SECOND;
}

export function registry(env: Env) {
  return env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
}

async function cached<T>(env: Env, key: CacheKey): Promise<T | null> {
  const nowMs = Date.now();
  const hit = memory.get(key);
  if (hit && hit.until > nowMs) return hit.value as T;
  const stored = await env.CLIENT_CACHE.get<T>(await kvKey(key), { type: "json", cacheTtl: 60 });
  if (stored === null && !mayAskRegistry()) return null;
  const value = stored ?? ((await registry(env).cacheMiss(key)) as T | null);
  const ttl = value === null ? ABSENT_SECONDS : config(env).CLIENT_CACHE_TTL;
  if (ttl > 0) {
    if (memory.size >= MEMORY_MAX) memory.delete(memory.keys().next().value as string);
    memory.set(key, { value, until: nowMs + ttl * 1000 });
  }
  return value;
}

/**
 * The client `clientId`: a registered one (null when unknown), or, when the client_id is a URL, the
 * client its metadata document describes (`metadata-document.ts`; throws `invalid_client` when the URL
 * or its document cannot be used). Every endpoint finds clients here, so both kinds work everywhere.
 */
export function findClient(env: Env, clientId: string): Promise<Client | null> {
  if (isClientIdUrl(clientId)) return resolveMetadataDocument(env, clientId);
  return cached(env, `client:${clientId}`);
}

/** The registered resource whose indicator is exactly `uri`, or null. */
export function findResource(env: Env, uri: string): Promise<Resource | null> {
  return cached(env, `resource-uri:${uri}`);
}

/**
 * Every trusted attester (`durable-objects/registry-attestation.ts` keeps the list whole under one key,
 * so an unknown issuer is answered from the cache too), within the same staleness bound as clients.
 */
export async function findAttesters(env: Env): Promise<Attester[]> {
  return (await cached<Attester[]>(env, "attesters")) ?? [];
}

/** Drops this isolate's copy after a change made through it (other isolates follow within the bound). */
export function evict(key: CacheKey): void {
  memory.delete(key);
}

/** Tests only. */
export function clearMemoryCache(): void {
  memory.clear();
}
