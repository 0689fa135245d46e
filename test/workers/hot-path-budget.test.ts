import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildApp } from "../../workers/app";
import { ABSENT_SECONDS, clearMemoryCache, MISSES_PER_SECOND } from "../../workers/clients/cache";
import { JWT_BEARER } from "../../workers/clients/private-key-jwt";
import { setClock } from "../../workers/clock";
import { obtainCode, pkce } from "./browser";
import { basic, type CreatedClient, createClient, ISSUER, MCP_RESOURCE } from "./helpers";

/**
 * DESIGN.md "Hot-path budget", asserted by counting binding calls: the app (`buildApp()`) is called
 * with an env whose Durable Object namespaces and KV namespace are wrapped in Proxies that record
 * every `get()`, every stub method call and every KV operation.
 *
 * - client_credentials with a cached client and key: no Durable Object call, and no KV read when the
 *   isolate's memory cache is warm; with private_key_jwt, the one ReplayGuard call for the assertion's jti;
 * - authorization_code and refresh_token: exactly one GrantObject call;
 * - JWKS and metadata: served from memory.
 *
 * `workers/config.ts` caches the parsed config per env object and `workers/tokens/keys.ts` the key set
 * per isolate, so each test warms its own counting env with one request and counts the next.
 */

const DO_BINDINGS = ["REGISTRY", "GRANTS", "KEY_RING", "REPLAY_GUARD"] as const;

interface Counts {
  /** `namespace.get()` / `getByName()` calls, as "GRANTS.get". */
  gets: string[];
  /** Stub method calls, as "GRANTS.redeemCode". */
  calls: string[];
  /** KV operations, as "CLIENT_CACHE.get". */
  kv: string[];
}

function counting(): { env: Env; counts: Counts; reset(): void } {
  const counts: Counts = { gets: [], calls: [], kv: [] };
  const stub = (name: string, target: object) =>
    new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop);
        if (typeof prop !== "string" || typeof value !== "function") return value;
        return (...args: unknown[]) => {
          counts.calls.push(`${name}.${prop}`);
          return Reflect.apply(value, t, args);
        };
      },
    });
  const namespace = (name: string, target: object) =>
    new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop);
        if (typeof value !== "function") return value;
        if (prop === "get" || prop === "getByName") {
          return (...args: unknown[]) => {
            counts.gets.push(`${name}.${prop}`);
            return stub(name, Reflect.apply(value, t, args) as object);
          };
        }
        return value.bind(t);
      },
    });
  const kv = (name: string, target: object) =>
    new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop);
        if (typeof prop !== "string" || typeof value !== "function") return value;
        return (...args: unknown[]) => {
          counts.kv.push(`${name}.${prop}`);
          return Reflect.apply(value, t, args);
        };
      },
    });
  const wrapped: Record<string, unknown> = { ...env, CLIENT_CACHE: kv("CLIENT_CACHE", env.CLIENT_CACHE) };
  for (const name of DO_BINDINGS) wrapped[name] = namespace(name, env[name]);
  return {
    env: wrapped as unknown as Env,
    counts,
    reset() {
      counts.gets.length = 0;
      counts.calls.length = 0;
      counts.kv.length = 0;
    },
  };
}

const app = buildApp();
let c = counting();

/** One request through `buildApp().fetch` with the counting env. */
async function send(path: string, init?: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(new URL(path, ISSUER), init), c.env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

function form(path: string, params: Record<string, string>, authorization: string): Promise<Response> {
  return send(path, {
    method: "POST",
    body: new URLSearchParams(params),
    headers: { "Content-Type": "application/x-www-form-urlencoded", Authorization: authorization },
  });
}

const REDIRECT = "https://app.example/callback";
let agent: CreatedClient;
let webApp: CreatedClient;

beforeAll(async () => {
  agent = await createClient({ client_name: "Agent", grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
  webApp = await createClient({
    client_name: "App",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
});

beforeEach(() => {
  c = counting();
});

const agentAuth = () => basic(agent.client_id, agent.client_secret as string);
const appAuth = () => basic(webApp.client_id, webApp.client_secret as string);
const clientCredentials = () => form("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" }, agentAuth());

async function code(): Promise<{ code: string; verifier: string }> {
  const p = await pkce();
  const { code } = await obtainCode(
    {
      response_type: "code",
      client_id: webApp.client_id,
      redirect_uri: REDIRECT,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      resource: MCP_RESOURCE,
      scope: "mcp:read",
    },
    REDIRECT,
  );
  return { code, verifier: p.verifier };
}

const redeem = (x: { code: string; verifier: string }) =>
  form("/token", { grant_type: "authorization_code", code: x.code, code_verifier: x.verifier, redirect_uri: REDIRECT }, appAuth());

describe("hot-path budget (DESIGN.md): binding calls per request", () => {
  it("client_credentials with a cached client and key: no Durable Object call, no KV read", async () => {
    expect((await clientCredentials()).status).toBe(200);
    c.reset();
    const res = await clientCredentials();
    expect(res.status).toBe(200);
    expect(c.counts).toEqual({ gets: [], calls: [], kv: [] });
  });

  it("client_credentials with private_key_jwt: one ReplayGuard call (the assertion's jti), nothing else", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const keyAgent = await createClient({
      client_name: "Key agent",
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "private_key_jwt",
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" }] },
    });
    const request = async () => {
      const assertion = await new SignJWT({ jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: "ES256", kid: "k1", typ: "client-authentication+jwt" })
        .setIssuer(keyAgent.client_id)
        .setSubject(keyAgent.client_id)
        .setAudience(ISSUER)
        .setIssuedAt()
        .setExpirationTime("1m")
        .sign(privateKey);
      return send("/token", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "client_credentials", client_assertion_type: JWT_BEARER, client_assertion: assertion, resource: MCP_RESOURCE }),
      });
    };
    expect((await request()).status).toBe(200);
    c.reset();
    expect((await request()).status).toBe(200);
    expect(c.counts).toEqual({ gets: ["REPLAY_GUARD.get"], calls: ["REPLAY_GUARD.claim"], kv: [] });
  });

  it("client_credentials with a cold memory cache: the client and resource come from KV, still no Durable Object call", async () => {
    expect((await clientCredentials()).status).toBe(200);
    clearMemoryCache();
    c.reset();
    const res = await clientCredentials();
    expect(res.status).toBe(200);
    expect({ gets: c.counts.gets, calls: c.counts.calls }).toEqual({ gets: [], calls: [] });
    expect(c.counts.kv.sort()).toEqual(["CLIENT_CACHE.get", "CLIENT_CACHE.get"]);
  });

  it("authorization_code redemption: exactly one GrantObject call", async () => {
    const [first, second] = [await code(), await code()];
    expect((await redeem(first)).status).toBe(200);
    c.reset();
    const res = await redeem(second);
    expect(res.status).toBe(200);
    expect(c.counts).toEqual({ gets: ["GRANTS.get"], calls: ["GRANTS.redeemCode"], kv: [] });
  });

  it("refresh_token rotation: exactly one GrantObject call", async () => {
    const first = (await (await redeem(await code())).json()) as { refresh_token: string };
    const second = (await (await redeem(await code())).json()) as { refresh_token: string };
    expect((await form("/token", { grant_type: "refresh_token", refresh_token: first.refresh_token }, appAuth())).status).toBe(200);
    c.reset();
    const res = await form("/token", { grant_type: "refresh_token", refresh_token: second.refresh_token }, appAuth());
    expect(res.status).toBe(200);
    expect(c.counts).toEqual({ gets: ["GRANTS.get"], calls: ["GRANTS.refresh"], kv: [] });
  });

  it("introspection: one ReplayGuard call for a client's own token (was it revoked?), one GrantObject call for a token of a user's grant", async () => {
    const own = ((await (await clientCredentials()).json()) as { access_token: string }).access_token;
    const users = ((await (await redeem(await code())).json()) as { access_token: string }).access_token;
    c.reset();
    expect(await (await form("/introspect", { token: own }, agentAuth())).json()).toMatchObject({ active: true });
    expect(c.counts).toEqual({ gets: ["REPLAY_GUARD.get"], calls: ["REPLAY_GUARD.seen"], kv: [] });
    c.reset();
    expect(await (await form("/introspect", { token: users }, agentAuth())).json()).toMatchObject({ active: true });
    expect(c.counts).toEqual({ gets: ["GRANTS.get"], calls: ["GRANTS.status"], kv: [] });
  });

  it("JWKS and metadata: served from memory", async () => {
    expect((await send("/jwks")).status).toBe(200);
    expect((await send("/.well-known/oauth-authorization-server")).status).toBe(200);
    c.reset();
    for (const path of ["/jwks", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]) {
      expect((await send(path)).status).toBe(200);
    }
    expect(c.counts).toEqual({ gets: [], calls: [], kv: [] });
  });
});

describe("made-up client_ids: the one Registry is spared", () => {
  afterEach(() => setClock());
  const unknown = (id: string) => form("/token", { grant_type: "client_credentials" }, basic(id, "x"));
  const registryCalls = () => c.counts.calls.filter((call) => call.startsWith("REGISTRY."));

  it(`asks it once about an unknown client, then remembers the answer for ${ABSENT_SECONDS} seconds`, async () => {
    for (let i = 0; i < 3; i++) expect((await unknown("lk_made_up_once")).status).toBe(401);
    expect(registryCalls()).toEqual(["REGISTRY.cacheMiss"]);
  });

  it(`lets at most ${MISSES_PER_SECOND} lookups a second per isolate reach it; beyond, what KV does not know is unknown`, async () => {
    const second = (Math.floor(Date.now() / 1000) + 1000) * 1000;
    setClock(() => second);
    for (let i = 0; i < MISSES_PER_SECOND + 5; i++) expect((await unknown(`lk_flood_${i}`)).status).toBe(401);
    expect(registryCalls()).toHaveLength(MISSES_PER_SECOND);
    // The next second, lookups reach it again; a real client in KV is never affected.
    setClock(() => second + 1000);
    expect((await unknown("lk_flood_next")).status).toBe(401);
    expect(registryCalls()).toHaveLength(MISSES_PER_SECOND + 1);
    expect((await clientCredentials()).status).toBe(200);
  });
});
