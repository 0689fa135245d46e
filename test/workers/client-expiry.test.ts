import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { Registry } from "../../durable-objects/registry";
import { LAST_USED_MARGIN } from "../../workers/clients/last-used";
import { setClock } from "../../workers/clock";
import { config } from "../../workers/config";
import { parseHandle } from "../../workers/tokens/handles";
import { obtainCode, pkce } from "./browser";
import { adminCall, basic, createClient, MCP_RESOURCE, postForm, withVars } from "./helpers";

/**
 * Dynamically registered clients left unused for CLIENT_IDLE_TTL (90 days in dev) are deleted by the
 * Registry's alarm; use is recorded in KV, at most hourly, never by a Durable Object call.
 */

const IDLE_TTL = 90 * 86_400;
const REDIRECT = "https://agent.example/cb";
const registry = () => env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
/** Waits for the Worker's waitUntil work, so KV writes of recorded use have landed. */
const send = withVars({});
let network = 0;

afterEach(() => setClock());

async function register(metadata: Record<string, unknown>) {
  const res = await send("/register", {
    method: "POST",
    headers: { "Content-Type": "application/json", "CF-Connecting-IP": `198.51.100.${++network}` },
    body: JSON.stringify(metadata),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { client_id: string; client_secret?: string; client_id_issued_at: number };
}

const machine = { grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic", scope: "mcp:read" };
const useMachine = (c: { client_id: string; client_secret?: string }) =>
  postForm("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE }, { Authorization: basic(c.client_id, c.client_secret as string) }, send);
const lastUsed = (clientId: string) => env.CLIENT_CACHE.get(`last-used:${clientId}`);

describe("idle expiry of dynamically registered clients", () => {
  it("deletes a client unused for CLIENT_IDLE_TTL (never before), revoking its grants; used and admin clients stay", async () => {
    const idle = await register({ redirect_uris: [REDIRECT], grant_types: ["authorization_code", "refresh_token"], token_endpoint_auth_method: "none" });
    const busy = await register(machine);
    const admin = await createClient(machine);
    const t0 = idle.client_id_issued_at;
    // A grant of the soon idle client, made at registration time.
    const p = await pkce();
    const { code } = await obtainCode(
      {
        response_type: "code",
        client_id: idle.client_id,
        code_challenge: p.challenge,
        code_challenge_method: "S256",
        scope: "mcp:read",
        resource: MCP_RESOURCE,
      },
      REDIRECT,
    );
    const tokens = (await (
      await postForm("/token", { grant_type: "authorization_code", client_id: idle.client_id, code, code_verifier: p.verifier }, {}, send)
    ).json()) as { refresh_token: string };

    // Within the margin past the TTL nothing is deleted; the busy client is used then.
    setClock(() => (t0 + IDLE_TTL + LAST_USED_MARGIN) * 1000);
    expect((await useMachine(busy)).status).toBe(200);
    expect(await lastUsed(busy.client_id)).toBe(String(t0 + IDLE_TTL + LAST_USED_MARGIN));
    expect(await runDurableObjectAlarm(registry())).toBe(true);
    expect(await registry().getClient(idle.client_id)).not.toBeNull();

    setClock(() => (t0 + IDLE_TTL + LAST_USED_MARGIN + 120) * 1000);
    expect(await runDurableObjectAlarm(registry())).toBe(true);
    expect(await registry().getClient(idle.client_id)).toBeNull();
    expect(await env.CLIENT_CACHE.get(`client:${idle.client_id}`)).toBeNull();
    expect(await lastUsed(idle.client_id)).toBeNull();
    expect(await registry().getClient(busy.client_id)).not.toBeNull();
    expect(await registry().getClient(admin.client_id)).not.toBeNull();
    const handle = await parseHandle("refresh", tokens.refresh_token);
    const grant = env.GRANTS.get(env.GRANTS.idFromString(handle?.object_id as string));
    expect(await grant.status({ refresh_hash: handle?.hash, now: t0 + 1 })).toEqual({ active: false });
    // The sweep remembered the busy client's use, and keeps watching.
    const entry = await runInDurableObject(registry(), (_r: Registry, state) => state.storage.get(`idle:${busy.client_id}`));
    expect(entry).toEqual({ last_used: t0 + IDLE_TTL + LAST_USED_MARGIN });
    expect(await runInDurableObject(registry(), (_r: Registry, state) => state.storage.getAlarm())).toBe(
      (t0 + IDLE_TTL + LAST_USED_MARGIN + 120 + 3600) * 1000,
    );
  });

  it("records use at most once an hour per client and isolate", async () => {
    const c = await register(machine);
    const t = c.client_id_issued_at + 10;
    setClock(() => t * 1000);
    await useMachine(c);
    setClock(() => (t + 600) * 1000);
    await useMachine(c);
    expect(await lastUsed(c.client_id)).toBe(String(t));
    setClock(() => (t + 3600) * 1000);
    await useMachine(c);
    expect(await lastUsed(c.client_id)).toBe(String(t + 3600));
  });

  it("never records use of admin-created clients", async () => {
    const admin = await createClient(machine);
    await useMachine(admin);
    expect(await lastUsed(admin.client_id)).toBeNull();
  });
});

describe("registry housekeeping", () => {
  it("forgets registration counts of past hours and expired initial access tokens", async () => {
    await register(machine);
    const token = (await (await adminCall("POST", "/initial-access-tokens", { expires_in: 60 })).json()) as { id: string };
    const keep = (await (await adminCall("POST", "/initial-access-tokens", {})).json()) as { id: string };
    const keys = () => runInDurableObject(registry(), async (_r: Registry, state) => [...(await state.storage.list({ prefix: "" })).keys()]);
    expect((await keys()).some((k) => k.startsWith("rate:"))).toBe(true);
    setClock(() => Date.now() + 2 * 3600_000);
    expect(await runDurableObjectAlarm(registry())).toBe(true);
    const after = await keys();
    expect(after.some((k) => k.startsWith("rate:"))).toBe(false);
    expect(after).not.toContain(`iat-id:${token.id}`);
    expect(after).toContain(`iat-id:${keep.id}`);
  });

  it("CLIENT_IDLE_TTL is 0 (never) or at least a day", () => {
    expect(config(env).CLIENT_IDLE_TTL).toBe(IDLE_TTL);
    expect(config({ ...env, CLIENT_IDLE_TTL: "0" } as Env).CLIENT_IDLE_TTL).toBe(0);
    expect(() => config({ ...env, CLIENT_IDLE_TTL: "3600" } as Env)).toThrow("CLIENT_IDLE_TTL: must be 0 (never) or at least 86400 (a day)");
  });
});
