import { DurableObject } from "cloudflare:workers";
import type { AttestationPolicy, Attester } from "../schemas/attestation";
import { type Client, DYNAMIC_CLIENT_ID } from "../schemas/client";
import type { CreateClientResult, InitialAccessToken, RegistrationGate } from "../schemas/registration";
import type { Resource, ResourceInput, User } from "../schemas/resource";
import { isClientIdUrl } from "../workers/clients/client-id-url";
import { now as clock } from "../workers/clock";
import { config } from "../workers/config";
import { log } from "../workers/observe/log";
import {
  type CreateAttesterResult,
  createAttesterRecord,
  deleteAttesterRecord,
  listAttesterRecords,
  type PolicyTarget,
  type SetPolicyResult,
  setPolicyRecord,
} from "./registry-attestation";
import { type CacheKey, RETRY_AFTER, RegistryCache } from "./registry-cache";
import type { ClientUpdate } from "./registry-clients";
import { createClientRecord, deleteClientRecord, type ManageResult, manageClientRecord } from "./registry-clients";
import { housekeeping } from "./registry-housekeeping";
import { beginRevocation, continueRevocations, revokeGrantsOf } from "./registry-revocation";
import { seedDevData } from "./seed";

/**
 * Registry: the source of truth for clients, resources, local users, remembered consent and the
 * index of which grants belong to which client and user (so deleting either revokes them).
 * One instance per environment (`idFromName("registry")`). Writes go through to the KV cache that the
 * hot path reads (`workers/clients/cache.ts`), and so does the fill after a miss, both ordered per key
 * (`registry-cache.ts`); reads of the truth come here.
 *
 * Storage keys:
 *   client:{client_id}            → Client
 *   resource:{id}                 → Resource      resource-uri:{uri} → id
 *   user:{id}                     → User          user-email:{email} → id
 *   consent:{sub}\n{client}\n{audience} → string[] (scopes the user allowed)
 *   grant-of:{client|user}:{id}\n{grant_id} → when it was recorded (seconds; `true` in entries older than that)
 *   login-failures:{email}        → { count, locked_until } (sign-in lockout)
 *   idle:…, iat:…, iat-id:…, rate:…  (registration; see `registry-clients.ts`)
 *   attester:…, attester-iss:…     (trusted attesters; see `registry-attestation.ts`)
 *   cache-dirty:{KV key}          → when its last KV write failed (`registry-cache.ts`)
 *   revoking:{client|user}:{id}   → a deleted owner with grants left to revoke (`registry-revocation.ts`)
 *
 * The alarm writes KV again where a write-through failed (`registry-cache.ts`), goes on revoking the
 * grants of deleted owners (`registry-revocation.ts`) and does housekeeping
 * (`registry-housekeeping.ts`): it deletes dynamically registered clients left unused for
 * CLIENT_IDLE_TTL, expired initial access tokens and past registration counts.
 */
export class Registry extends DurableObject<Env> {
  private readonly cache: RegistryCache;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.cache = new RegistryCache(ctx.storage, env.CLIENT_CACHE, (at) => this.alarmBy(at));
    if (env.ENVIRONMENT === "dev") ctx.blockConcurrencyWhile(() => seedDevData(ctx.storage, this.cache));
  }

  /** A miss in the hot path's cache (`workers/clients/cache.ts`): the record, which also fills KV. */
  async cacheMiss(key: CacheKey): Promise<unknown> {
    return this.cache.fill(key);
  }

  // ── clients ─────────────────────────────────────────────────────────────────────────────────
  /** Creates a client once past its gate (initial access token, registrations per network and hour). */
  async createClient(client: Client, gate?: RegistrationGate): Promise<CreateClientResult> {
    const result = await createClientRecord(this.ctx.storage, this.cache, client, gate);
    if (result.ok && (gate || client.registered_by === "dynamic_registration")) await this.watch();
    return result;
  }

  async getClient(clientId: string): Promise<Client | null> {
    return (await this.ctx.storage.get<Client>(`client:${clientId}`)) ?? null;
  }

  /**
   * RFC 7592 read (no `update`) or update, authorized by the client's registration access token and
   * rotating it (`registry-clients.ts`).
   */
  async manageClient(input: { client_id: string; token_hash: string; new_token_hash: string; update?: ClientUpdate }): Promise<ManageResult> {
    return manageClientRecord(this.ctx.storage, this.cache, input);
  }

  /**
   * Deletes the client and revokes every grant it holds. With `token_hash` (RFC 7592 §2.3) only if it
   * is the client's registration access token.
   */
  async deleteClient(
    clientId: string,
    auth?: { token_hash: string },
  ): Promise<{ ok: true; revoked_grants: number } | { ok: false; reason: "not_found" | "invalid_token" }> {
    const client = await this.ctx.storage.get<Client>(`client:${clientId}`);
    if (auth && (!client?.registration_access_token_hash || client.registration_access_token_hash !== auth.token_hash)) {
      return { ok: false, reason: "invalid_token" };
    }
    if (!client) return { ok: false, reason: "not_found" };
    // The mark and the deletion are one write (no other I/O between them): a client is never gone with its grants unmarked.
    await beginRevocation(this.ctx.storage, `client:${clientId}`);
    await deleteClientRecord(this.ctx.storage, this.env, this.cache, clientId);
    return { ok: true, revoked_grants: await this.revokeFirstPage(`client:${clientId}`) };
  }

  // ── initial access tokens (RFC 7591 §3) ─────────────────────────────────────────────────────
  async createInitialAccessToken(input: { token_hash: string; token: InitialAccessToken }): Promise<{ ok: true }> {
    await this.ctx.storage.put({ [`iat:${input.token_hash}`]: input.token, [`iat-id:${input.token.id}`]: input.token_hash });
    if (input.token.expires_at !== undefined) await this.watch();
    return { ok: true };
  }

  async getInitialAccessToken(id: string): Promise<InitialAccessToken | null> {
    const hash = await this.ctx.storage.get<string>(`iat-id:${id}`);
    const token = hash ? await this.ctx.storage.get<InitialAccessToken>(`iat:${hash}`) : undefined;
    return token && (token.expires_at === undefined || token.expires_at > clock()) ? token : null;
  }

  async deleteInitialAccessToken(id: string): Promise<{ ok: true } | { ok: false; reason: "not_found" }> {
    const hash = await this.ctx.storage.get<string>(`iat-id:${id}`);
    if (!hash) return { ok: false, reason: "not_found" };
    await this.ctx.storage.delete([`iat:${hash}`, `iat-id:${id}`]);
    return { ok: true };
  }

  // ── resources ───────────────────────────────────────────────────────────────────────────────
  async createResource(resource: Resource): Promise<{ ok: true } | { ok: false; reason: "exists" }> {
    const uriKey = `resource-uri:${resource.resource}` as const;
    if (await this.ctx.storage.get(uriKey)) return { ok: false, reason: "exists" };
    await this.ctx.storage.put({ [`resource:${resource.id}`]: resource, [uriKey]: resource.id });
    await this.cache.publish(uriKey);
    return { ok: true };
  }

  async getResource(id: string): Promise<Resource | null> {
    return (await this.ctx.storage.get<Resource>(`resource:${id}`)) ?? null;
  }

  /** Replaces what an administrator may change of a resource: everything but its identifier, id and policy. */
  async updateResource(id: string, input: ResourceInput): Promise<{ ok: true; resource: Resource } | { ok: false; reason: "not_found" | "resource_changed" }> {
    const before = await this.getResource(id);
    if (!before) return { ok: false, reason: "not_found" };
    if (input.resource !== before.resource) return { ok: false, reason: "resource_changed" };
    const resource: Resource = { ...before, ...input };
    if (input.self_registered_client_credentials_scopes === undefined) delete resource.self_registered_client_credentials_scopes;
    await this.ctx.storage.put(`resource:${id}`, resource);
    await this.cache.publish(`resource-uri:${resource.resource}`);
    return { ok: true, resource };
  }

  async deleteResource(id: string): Promise<{ ok: true } | { ok: false; reason: "not_found" }> {
    const resource = await this.getResource(id);
    if (!resource) return { ok: false, reason: "not_found" };
    await this.ctx.storage.delete([`resource:${id}`, `resource-uri:${resource.resource}`]);
    await this.cache.publish(`resource-uri:${resource.resource}`);
    return { ok: true };
  }

  // ── attestation: trusted attesters, policies on clients and resources ────────────────────────
  async createAttester(attester: Attester): Promise<CreateAttesterResult> {
    return createAttesterRecord(this.ctx.storage, this.cache, attester);
  }

  async listAttesters(): Promise<Attester[]> {
    return listAttesterRecords(this.ctx.storage);
  }

  async deleteAttester(id: string): Promise<{ ok: true } | { ok: false; reason: "not_found" }> {
    return deleteAttesterRecord(this.ctx.storage, this.cache, id);
  }

  async setPolicy(target: PolicyTarget, policy: AttestationPolicy | null): Promise<SetPolicyResult> {
    return setPolicyRecord(this.ctx.storage, this.cache, target, policy);
  }

  // ── users ───────────────────────────────────────────────────────────────────────────────────
  async createUser(user: User): Promise<{ ok: true } | { ok: false; reason: "exists" }> {
    const emailKey = `user-email:${user.email}`;
    if (await this.ctx.storage.get(emailKey)) return { ok: false, reason: "exists" };
    await this.ctx.storage.put({ [`user:${user.id}`]: user, [emailKey]: user.id });
    return { ok: true };
  }

  async getUser(id: string): Promise<User | null> {
    return (await this.ctx.storage.get<User>(`user:${id}`)) ?? null;
  }

  /** Ends every session of the user so far (sign-out everywhere): the next generation's are the only ones `activeSession` takes. */
  async endSessions(input: { id: string }): Promise<{ ok: true } | { ok: false; reason: "not_found" }> {
    const user = await this.getUser(input.id);
    if (!user) return { ok: false, reason: "not_found" };
    await this.ctx.storage.put(`user:${user.id}`, { ...user, session_generation: (user.session_generation ?? 0) + 1 } satisfies User);
    return { ok: true };
  }

  async getUserByEmail(email: string): Promise<User | null> {
    const id = await this.ctx.storage.get<string>(`user-email:${email.toLowerCase()}`);
    return id ? this.getUser(id) : null;
  }

  /** Deletes the user, their remembered consent, and revokes every grant they gave. */
  async deleteUser(id: string): Promise<{ ok: true; revoked_grants: number } | { ok: false; reason: "not_found" }> {
    const user = await this.getUser(id);
    if (!user) return { ok: false, reason: "not_found" };
    // The mark and the deletion are one write: a user is never gone with their grants unmarked.
    await beginRevocation(this.ctx.storage, `user:${id}`);
    await this.ctx.storage.delete([`user:${id}`, `user-email:${user.email}`]);
    const consents = [...(await this.ctx.storage.list({ prefix: `consent:${id}\n` })).keys()];
    // storage.delete takes at most 128 keys at a time.
    for (let i = 0; i < consents.length; i += 128) await this.ctx.storage.delete(consents.slice(i, i + 128));
    return { ok: true, revoked_grants: await this.revokeFirstPage(`user:${id}`) };
  }

  // ── sign-in attempts ────────────────────────────────────────────────────────────────────────
  /**
   * The account behind a sign-in attempt, or when it may next try. Each attempt counts as a failure
   * from the moment it begins, in this one transition: simultaneous guesses cannot all slip past the
   * lock while their passwords are being checked. After LOCKOUT_AFTER consecutive failures the email is
   * locked for a minute, doubling with each further failure up to an hour; `loginSucceeded` resets it.
   * Lockout is kept per email, known or not, so it never tells which emails have accounts.
   */
  async beginLogin(email: string, now: number): Promise<{ ok: true; user: User | null } | { ok: false; reason: "locked"; retry_after: number }> {
    const key = `login-failures:${email}`;
    const stored = await this.ctx.storage.get<LoginFailures>(key);
    if (stored && stored.locked_until > now) return { ok: false, reason: "locked", retry_after: stored.locked_until - now };
    const count = (stored && now - stored.last_failure <= FAILURES_FORGOTTEN_AFTER ? stored.count : 0) + 1;
    const over = count - LOCKOUT_AFTER;
    const locked_for = over >= 0 ? Math.min(60 * 2 ** over, 3600) : 0;
    await this.ctx.storage.put(key, { count, locked_until: locked_for > 0 ? now + locked_for : 0, last_failure: now } satisfies LoginFailures);
    return { ok: true, user: await this.getUserByEmail(email) };
  }

  /** The attempt `beginLogin` counted was the right password: the email's failures are forgotten. */
  async loginSucceeded(email: string): Promise<{ ok: true }> {
    await this.ctx.storage.delete(`login-failures:${email}`);
    return { ok: true };
  }

  // ── consent and the grant index ─────────────────────────────────────────────────────────────
  /** Scopes the user has already allowed this client for this audience (resource or issuer). */
  async getConsent(sub: string, clientId: string, audience: string): Promise<string[]> {
    return (await this.ctx.storage.get<string[]>(consentKey(sub, clientId, audience))) ?? [];
  }

  /**
   * Records an authorization: remembers the scopes for each audience (when the user consented) and
   * indexes the grant under its client and user, so that deleting either can revoke it. Refused for a
   * user who no longer exists: one deleted after their session was checked must get no grant the
   * deletion's revocation has already passed by.
   */
  async recordGrant(input: {
    grant_id: string;
    sub: string;
    client_id: string;
    /** Remembered under `holder` (the client, or the client at a redirect host: `consentHolder`). */
    consent?: { holder: string; audiences: string[]; scopes: string[] };
  }): Promise<{ ok: true } | { ok: false; reason: "no_user" | "no_client" }> {
    if (!(await this.ctx.storage.get(`user:${input.sub}`))) return { ok: false, reason: "no_user" };
    // Likewise a registered client deleted while another isolate still had it cached (a URL client_id or the
    // unregistered clients' shared one has no record here).
    const unrecorded = isClientIdUrl(input.client_id) || input.client_id === DYNAMIC_CLIENT_ID;
    if (!unrecorded && !(await this.ctx.storage.get(`client:${input.client_id}`))) return { ok: false, reason: "no_client" };
    const recorded = clock();
    const writes: Record<string, unknown> = {
      [`grant-of:client:${input.client_id}\n${input.grant_id}`]: recorded,
      [`grant-of:user:${input.sub}\n${input.grant_id}`]: recorded,
    };
    for (const audience of input.consent?.audiences ?? []) {
      const key = consentKey(input.sub, input.consent?.holder ?? input.client_id, audience);
      const before = (await this.ctx.storage.get<string[]>(key)) ?? [];
      writes[key] = [...new Set([...before, ...(input.consent?.scopes ?? [])])].sort();
    }
    await this.ctx.storage.put(writes);
    return { ok: true };
  }

  /**
   * The ids of a user's newest `limit` grants in the index (live, or finished and not yet forgotten), newest
   * first. The index is keyed by random ids, so all of the user's entries are read (one storage list, bounded).
   */
  async grantsOfUser(input: { sub: string; limit: number }): Promise<string[]> {
    const prefix = `grant-of:user:${input.sub}\n`;
    const entries = await this.ctx.storage.list<number | true>({ prefix, limit: USER_INDEX_READ });
    const when = (v: number | true) => (typeof v === "number" ? v : 0);
    return [...entries]
      .sort(([, a], [, b]) => when(b) - when(a))
      .slice(0, input.limit)
      .map(([k]) => k.slice(prefix.length));
  }

  /** Drops a finished grant from the index (called by the grant when it expires or is revoked). */
  async forgetGrant(input: { grant_id: string; sub: string; client_id: string }): Promise<{ ok: true }> {
    await this.ctx.storage.delete([`grant-of:client:${input.client_id}\n${input.grant_id}`, `grant-of:user:${input.sub}\n${input.grant_id}`]);
    return { ok: true };
  }

  // ── housekeeping ────────────────────────────────────────────────────────────────────────────
  override async alarm(): Promise<void> {
    await this.cache.retry();
    const next = await housekeeping(this.ctx.storage, this.env, this.cache, clock(), config(this.env).CLIENT_IDLE_TTL);
    if (await continueRevocations(this.ctx.storage, this.env)) await this.alarmBy(clock() + 1);
    if (next !== null) await this.alarmBy(next);
  }

  /** The first page of a deleted owner's grants, revoked at once; the alarm does the rest (`registry-revocation.ts`). */
  private async revokeFirstPage(owner: string): Promise<number> {
    try {
      const { revoked, more } = await revokeGrantsOf(this.ctx.storage, this.env, owner);
      if (more) await this.alarmBy(clock() + 1);
      return revoked;
    } catch (error) {
      log("warn", "revocation_deferred", { owner, error: String(error) });
      await this.alarmBy(clock() + RETRY_AFTER);
      return 0;
    }
  }

  /** Makes sure the alarm runs by `at` (seconds), keeping an earlier one. */
  private async alarmBy(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at * 1000) await this.ctx.storage.setAlarm(at * 1000);
  }

  /** Makes sure housekeeping will run: something now needs watching. */
  private async watch(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm((clock() + 3600) * 1000);
  }
}

/** Most of a user's index entries read to find their newest grants: far beyond what any one user holds. */
const USER_INDEX_READ = 10_000;

/** Consecutive failed sign-ins before an email is locked. */
const LOCKOUT_AFTER = 5;

/** Failures older than a day no longer count towards a lockout. */
const FAILURES_FORGOTTEN_AFTER = 86_400;

interface LoginFailures {
  count: number;
  locked_until: number;
  last_failure: number;
}

function consentKey(sub: string, clientId: string, audience: string): string {
  return `consent:${sub}\n${clientId}\n${audience}`;
}
