import { DurableObject } from "cloudflare:workers";
import { type Client, DYNAMIC_CLIENT_ID } from "../schemas/client";
import type { Resource, User } from "../schemas/resource";
import { seedDevData } from "./seed";

/**
 * Registry: the source of truth for clients, resources, local users, remembered consent and the
 * index of which grants belong to which client and user (so deleting either revokes them).
 * One instance per environment (`idFromName("registry")`). Writes go through to the KV cache that the
 * hot path reads (`workers/clients/cache.ts`); reads of the truth come here.
 *
 * Storage keys:
 *   client:{client_id}            → Client
 *   resource:{id}                 → Resource      resource-uri:{uri} → id
 *   user:{id}                     → User          user-email:{email} → id
 *   consent:{sub}\n{client}\n{audience} → string[] (scopes the user allowed)
 *   grant-of:{client|user}:{id}\n{grant_id} → true
 */
export class Registry extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (env.ENVIRONMENT === "dev") ctx.blockConcurrencyWhile(() => seedDevData(ctx.storage, env));
  }

  // ── clients ─────────────────────────────────────────────────────────────────────────────────
  async createClient(client: Client): Promise<{ ok: true } | { ok: false; reason: "exists" | "reserved" }> {
    // draft-richer-oauth-pushed-client-registration §4: "An AS MUST NOT assign the value
    // urn:ietf:oauth:parameters:dynamic to any single client registration."
    if (client.client_id === DYNAMIC_CLIENT_ID) return { ok: false, reason: "reserved" };
    const key = `client:${client.client_id}`;
    if (await this.ctx.storage.get(key)) return { ok: false, reason: "exists" };
    await this.ctx.storage.put(key, client);
    await this.env.CLIENT_CACHE.put(key, JSON.stringify(client));
    return { ok: true };
  }

  async getClient(clientId: string): Promise<Client | null> {
    return (await this.ctx.storage.get<Client>(`client:${clientId}`)) ?? null;
  }

  /** Deletes the client and revokes every grant it holds. */
  async deleteClient(clientId: string): Promise<{ ok: true; revoked_grants: number } | { ok: false; reason: "not_found" }> {
    const key = `client:${clientId}`;
    if (!(await this.ctx.storage.get(key))) return { ok: false, reason: "not_found" };
    await this.ctx.storage.delete(key);
    await this.env.CLIENT_CACHE.delete(key);
    return { ok: true, revoked_grants: await this.revokeGrantsOf(`client:${clientId}`) };
  }

  // ── resources ───────────────────────────────────────────────────────────────────────────────
  async createResource(resource: Resource): Promise<{ ok: true } | { ok: false; reason: "exists" }> {
    const uriKey = `resource-uri:${resource.resource}`;
    if (await this.ctx.storage.get(uriKey)) return { ok: false, reason: "exists" };
    await this.ctx.storage.put({ [`resource:${resource.id}`]: resource, [uriKey]: resource.id });
    await this.env.CLIENT_CACHE.put(uriKey, JSON.stringify(resource));
    return { ok: true };
  }

  async getResource(id: string): Promise<Resource | null> {
    return (await this.ctx.storage.get<Resource>(`resource:${id}`)) ?? null;
  }

  async getResourceByUri(uri: string): Promise<Resource | null> {
    const id = await this.ctx.storage.get<string>(`resource-uri:${uri}`);
    return id ? this.getResource(id) : null;
  }

  async deleteResource(id: string): Promise<{ ok: true } | { ok: false; reason: "not_found" }> {
    const resource = await this.getResource(id);
    if (!resource) return { ok: false, reason: "not_found" };
    await this.ctx.storage.delete([`resource:${id}`, `resource-uri:${resource.resource}`]);
    await this.env.CLIENT_CACHE.delete(`resource-uri:${resource.resource}`);
    return { ok: true };
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

  async getUserByEmail(email: string): Promise<User | null> {
    const id = await this.ctx.storage.get<string>(`user-email:${email.toLowerCase()}`);
    return id ? this.getUser(id) : null;
  }

  /** Deletes the user, their remembered consent, and revokes every grant they gave. */
  async deleteUser(id: string): Promise<{ ok: true; revoked_grants: number } | { ok: false; reason: "not_found" }> {
    const user = await this.getUser(id);
    if (!user) return { ok: false, reason: "not_found" };
    const consents = await this.ctx.storage.list({ prefix: `consent:${id}\n` });
    await this.ctx.storage.delete([`user:${id}`, `user-email:${user.email}`, ...consents.keys()]);
    return { ok: true, revoked_grants: await this.revokeGrantsOf(`user:${id}`) };
  }

  // ── consent and the grant index ─────────────────────────────────────────────────────────────
  /** Scopes the user has already allowed this client for this audience (resource or issuer). */
  async getConsent(sub: string, clientId: string, audience: string): Promise<string[]> {
    return (await this.ctx.storage.get<string[]>(consentKey(sub, clientId, audience))) ?? [];
  }

  /**
   * Records an authorization: remembers the scopes for each audience (when the user consented) and
   * indexes the grant under its client and user, so that deleting either can revoke it.
   */
  async recordGrant(input: { grant_id: string; sub: string; client_id: string; consent?: { audiences: string[]; scopes: string[] } }): Promise<{ ok: true }> {
    const writes: Record<string, unknown> = {
      [`grant-of:client:${input.client_id}\n${input.grant_id}`]: true,
      [`grant-of:user:${input.sub}\n${input.grant_id}`]: true,
    };
    for (const audience of input.consent?.audiences ?? []) {
      const key = consentKey(input.sub, input.client_id, audience);
      const before = (await this.ctx.storage.get<string[]>(key)) ?? [];
      writes[key] = [...new Set([...before, ...(input.consent?.scopes ?? [])])].sort();
    }
    await this.ctx.storage.put(writes);
    return { ok: true };
  }

  /** Drops a finished grant from the index (called by the grant when it expires or is revoked). */
  async forgetGrant(input: { grant_id: string; sub: string; client_id: string }): Promise<{ ok: true }> {
    await this.ctx.storage.delete([`grant-of:client:${input.client_id}\n${input.grant_id}`, `grant-of:user:${input.sub}\n${input.grant_id}`]);
    return { ok: true };
  }

  private async revokeGrantsOf(owner: string): Promise<number> {
    const prefix = `grant-of:${owner}\n`;
    const entries = await this.ctx.storage.list({ prefix });
    const ids = [...entries.keys()].map((k) => k.slice(prefix.length));
    await Promise.all(ids.map((id) => this.env.GRANTS.get(this.env.GRANTS.idFromString(id)).revoke("owner_deleted")));
    await this.ctx.storage.delete([...entries.keys()]);
    return ids.length;
  }
}

function consentKey(sub: string, clientId: string, audience: string): string {
  return `consent:${sub}\n${clientId}\n${audience}`;
}
