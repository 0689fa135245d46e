import { type Client, type ClientMetadata, DYNAMIC_CLIENT_ID } from "../schemas/client";
import type { CreateClientResult, InitialAccessToken, RegistrationGate } from "../schemas/registration";
import { usesSecret } from "../workers/clients/metadata";
import type { RegistryCache } from "./registry-cache";

/**
 * The Registry's client transitions, as functions over its storage (the class in `registry.ts` exposes
 * them). Each reads and writes storage only until its last step, the write-through to the KV cache
 * (`registry-cache.ts`), so input gates make each one atomic.
 *
 * Storage keys (besides `client:{client_id}`):
 *   idle:{client_id}            → { last_used }  dynamically registered clients, for the idle sweep
 *   iat:{hash}                  → InitialAccessToken      iat-id:{id} → hash
 *   rate:{hour}:{network}       → number of registrations from that network in that hour
 */

const HOUR = 3600;

/** Where the idle sweep keeps what it last knew of a dynamically registered client's use. */
export interface IdleEntry {
  last_used: number;
}

/**
 * Creates a client after its gate: the initial access token (one use spent) and the hourly count for
 * the caller's network. draft-richer-oauth-pushed-client-registration §4: "An AS MUST NOT assign the
 * value urn:ietf:oauth:parameters:dynamic to any single client registration."
 */
export async function createClientRecord(
  storage: DurableObjectStorage,
  cache: RegistryCache,
  client: Client,
  gate?: RegistrationGate,
): Promise<CreateClientResult> {
  if (client.client_id === DYNAMIC_CLIENT_ID) return { ok: false, reason: "reserved" };
  const key = `client:${client.client_id}`;
  if (await storage.get(key)) return { ok: false, reason: "exists" };
  const writes: Record<string, unknown> = { [key]: client };
  const deletes: string[] = [];
  if (gate?.initial_access_token_hash !== undefined) {
    const iatKey = `iat:${gate.initial_access_token_hash}`;
    const iat = await storage.get<InitialAccessToken>(iatKey);
    if (!iat || (iat.expires_at !== undefined && iat.expires_at <= gate.now)) return { ok: false, reason: "invalid_initial_access_token" };
    if (iat.uses_left === 1) deletes.push(iatKey, `iat-id:${iat.id}`);
    else if (iat.uses_left !== undefined) writes[iatKey] = { ...iat, uses_left: iat.uses_left - 1 };
  }
  if (gate?.rate) {
    const hour = Math.floor(gate.now / HOUR);
    const rateKey = `rate:${hour}:${gate.rate.key}`;
    const count = (await storage.get<number>(rateKey)) ?? 0;
    if (count >= gate.rate.limit) return { ok: false, reason: "rate_limited", retry_after: (hour + 1) * HOUR - gate.now };
    writes[rateKey] = count + 1;
  }
  if (client.registered_by === "dynamic_registration") writes[`idle:${client.client_id}`] = { last_used: client.client_id_issued_at } satisfies IdleEntry;
  await storage.put(writes);
  if (deletes.length) await storage.delete(deletes);
  await cache.publish(`client:${client.client_id}`);
  return { ok: true };
}

/** What an RFC 7592 update asks for; the caller validated `metadata` and minted `fresh_secret_hash`. */
export interface ClientUpdate {
  metadata: ClientMetadata;
  /** Hash of the `client_secret` the update carried, which must be the current one (RFC 7592 §2.2). */
  presented_secret_hash?: string;
  /** Hash of a new secret, used if the client now needs one and had none. */
  fresh_secret_hash?: string;
}

export type ManageResult = { ok: true; client: Client; secret_issued: boolean } | { ok: false; reason: "invalid_token" | "secret_mismatch" };

/**
 * RFC 7592 read (no `update`) or update of a dynamically registered client, authorized by its
 * registration access token, which is rotated in the same transition. An update replaces the
 * metadata (RFC 7592 §2.2: "MUST replace, not augment"); what the server assigned stays: client_id,
 * client_id_issued_at, and the secret while the client still authenticates with one.
 */
export async function manageClientRecord(
  storage: DurableObjectStorage,
  cache: RegistryCache,
  input: { client_id: string; token_hash: string; new_token_hash: string; update?: ClientUpdate },
): Promise<ManageResult> {
  const key = `client:${input.client_id}`;
  const client = await storage.get<Client>(key);
  if (!client?.registration_access_token_hash || client.registration_access_token_hash !== input.token_hash) return { ok: false, reason: "invalid_token" };
  let next: Client = { ...client, registration_access_token_hash: input.new_token_hash };
  let secret_issued = false;
  const update = input.update;
  if (update) {
    // RFC 7592 §2.2: "If the client includes the client_secret field in the request, the value of this
    // field MUST match the currently issued client secret for that client."
    if (update.presented_secret_hash !== undefined && update.presented_secret_hash !== client.client_secret_hash)
      return { ok: false, reason: "secret_mismatch" };
    const keepSecret = usesSecret(update.metadata) && client.client_secret_hash !== undefined;
    secret_issued = usesSecret(update.metadata) && !keepSecret && update.fresh_secret_hash !== undefined;
    next = {
      ...update.metadata,
      client_id: client.client_id,
      client_id_issued_at: client.client_id_issued_at,
      registered_by: client.registered_by,
      ...(client.attestation_policy ? { attestation_policy: client.attestation_policy } : {}),
      registration_access_token_hash: input.new_token_hash,
      ...(keepSecret ? { client_secret_hash: client.client_secret_hash, client_secret_expires_at: client.client_secret_expires_at ?? 0 } : {}),
      ...(secret_issued ? { client_secret_hash: update.fresh_secret_hash, client_secret_expires_at: 0 } : {}),
    };
  }
  await storage.put(key, next);
  await cache.publish(`client:${input.client_id}`);
  return { ok: true, client: next, secret_issued };
}

/** Deletes a client, its idle entry and cached records; the caller revokes its grants (`registry-revocation.ts`). */
export async function deleteClientRecord(storage: DurableObjectStorage, env: Env, cache: RegistryCache, clientId: string): Promise<void> {
  await storage.delete([`client:${clientId}`, `idle:${clientId}`]);
  await Promise.all([cache.publish(`client:${clientId}`), env.CLIENT_CACHE.delete(`last-used:${clientId}`)]);
}
