import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { now } from "../../workers/clock";
import { parseHandle } from "../../workers/tokens/handles";
import { authorizeUrl, Browser, obtainCode, pkce, signIn } from "./browser";
import { basic, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

/** RFC 7592 client configuration endpoint: read, replace and delete a registration with its registration access token. */

const RAT = /^lkm_[A-Za-z0-9_-]{43}$/;
const REDIRECT = "https://agent.example/cb";
let network = 0;

interface Registered {
  client_id: string;
  client_secret?: string;
  registration_access_token: string;
  registration_client_uri: string;
  [k: string]: unknown;
}

async function register(metadata: Record<string, unknown>): Promise<Registered> {
  // Each registration from its own address, so the per-network hourly limit never interferes here.
  const res = await call("/register", {
    method: "POST",
    headers: { "Content-Type": "application/json", "CF-Connecting-IP": `198.51.100.${++network}` },
    body: JSON.stringify(metadata),
  });
  expect(res.status).toBe(201);
  return res.json();
}

function manage(method: string, clientId: string, token?: string, body?: unknown): Promise<Response> {
  return call(`/register/${clientId}`, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const confidential = { client_name: "Agent", grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic", scope: "mcp:read" };

async function expectBadToken(res: Response): Promise<void> {
  expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}", error="invalid_token"`);
  expect(res.headers.get("cache-control")).toBe("no-store");
  await expectError(res, 401, "invalid_token", "the registration access token is invalid, or this client cannot be managed with it");
}

describe("registration response (RFC 7592 §3)", () => {
  it("carries a registration access token and the client configuration URI", async () => {
    const r = await register(confidential);
    expect(r.registration_access_token).toMatch(RAT);
    expect(r.registration_client_uri).toBe(`${ISSUER}/register/${r.client_id}`);
    expect(r).not.toHaveProperty("registration_access_token_hash");
  });

  it("is not given to clients the admin API creates", async () => {
    const admin = await createClient(confidential);
    expect(admin).not.toHaveProperty("registration_access_token");
    expect(admin).not.toHaveProperty("registration_client_uri");
  });
});

describe("GET /register/{client_id} (RFC 7592 §2.1)", () => {
  it("returns the client information with a new token; the old one stops working", async () => {
    const r = await register(confidential);
    const res = await manage("GET", r.client_id, r.registration_access_token);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Registered;
    const { client_secret: _s, registration_access_token: _t, ...expected } = r;
    expect({ ...body, registration_access_token: "…" }).toEqual({ ...expected, registration_access_token: "…" });
    expect(body.registration_access_token).toMatch(RAT);
    expect(body.registration_access_token).not.toBe(r.registration_access_token);
    await expectBadToken(await manage("GET", r.client_id, r.registration_access_token));
    expect((await manage("GET", r.client_id, body.registration_access_token)).status).toBe(200);
  });

  it("answers 401 invalid_token without a token, with another client's token, for an unknown or admin-created client", async () => {
    const r = await register(confidential);
    const other = await register(confidential);
    const none = await manage("GET", r.client_id);
    expect(none.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}"`);
    await expectError(none, 401, "invalid_token", "the registration access token is required");
    await expectBadToken(await manage("GET", r.client_id, other.registration_access_token));
    await expectBadToken(await manage("GET", "lk_nobody", r.registration_access_token));
    const admin = await createClient(confidential);
    await expectBadToken(await manage("GET", admin.client_id, r.registration_access_token));
    // None of that cost the rightful holder its token.
    expect((await manage("GET", r.client_id, r.registration_access_token)).status).toBe(200);
  });
});

describe("PUT /register/{client_id} (RFC 7592 §2.2)", () => {
  it("replaces the metadata (omitted fields are dropped), keeps id and secret, rotates the token", async () => {
    const r = await register({ ...confidential, contacts: ["ops@agent.example"], client_uri: "https://agent.example" });
    const res = await manage("PUT", r.client_id, r.registration_access_token, {
      client_id: r.client_id,
      client_name: "Agent v2",
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "client_secret_basic",
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Registered;
    expect(body).toMatchObject({
      client_id: r.client_id,
      client_id_issued_at: r.client_id_issued_at,
      client_name: "Agent v2",
      client_secret_expires_at: 0,
      registration_client_uri: r.registration_client_uri,
    });
    expect(body).not.toHaveProperty("contacts");
    expect(body).not.toHaveProperty("client_uri");
    expect(body).not.toHaveProperty("scope");
    expect(body).not.toHaveProperty("client_secret");
    expect(body.registration_access_token).not.toBe(r.registration_access_token);
    await expectBadToken(await manage("GET", r.client_id, r.registration_access_token));
    const read = (await (await manage("GET", r.client_id, body.registration_access_token)).json()) as Registered;
    expect(read.client_name).toBe("Agent v2");
    // The secret still works.
    const token = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE },
      { Authorization: basic(r.client_id, r.client_secret as string) },
    );
    expect(token.status).toBe(200);
  });

  it("validates an update as registration does: dev's loopback notification endpoint stays acceptable", async () => {
    const ping = {
      client_name: "Local ping agent",
      grant_types: ["urn:openid:params:grant-type:ciba"],
      token_endpoint_auth_method: "client_secret_basic",
      backchannel_token_delivery_mode: "ping",
      backchannel_client_notification_endpoint: "http://127.0.0.1:9/cb",
    };
    const r = await register(ping);
    const res = await manage("PUT", r.client_id, r.registration_access_token, { ...ping, client_id: r.client_id, client_name: "Local ping agent v2" });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toMatchObject({ client_name: "Local ping agent v2", backchannel_client_notification_endpoint: "http://127.0.0.1:9/cb" });
  });

  it("sends no code to a redirect URI an update removed while the user was signing in", async () => {
    const [a, b] = ["https://agent.example/a", "https://agent.example/b"];
    const spa = { client_name: "SPA", redirect_uris: [a, b], token_endpoint_auth_method: "none" };
    const r = await register(spa);
    const p = await pkce();
    const browser = new Browser();
    const params = {
      response_type: "code",
      client_id: r.client_id,
      redirect_uri: b,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      resource: MCP_RESOURCE,
      scope: "mcp:read",
    };
    const login = await browser.get(authorizeUrl(params));
    expect((await manage("PUT", r.client_id, r.registration_access_token, { ...spa, client_id: r.client_id, redirect_uris: [a] })).status).toBe(200);
    // The sign-in form's post finds the client changed: an error page, no redirect, no code.
    const after = await signIn(browser, login);
    expect(after.status).toBe(400);
    expect(after.headers.get("location")).toBeNull();
    expect(await after.text()).toContain("the client changed since this request began and no longer accepts it; start again from the application");
  });

  it("accepts the current client_secret in the body and refuses any other", async () => {
    const r = await register(confidential);
    const update = { client_id: r.client_id, grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" };
    await expectError(
      await manage("PUT", r.client_id, r.registration_access_token, { ...update, client_secret: "chosen-by-the-client" }),
      400,
      "invalid_client_metadata",
      "client_secret does not match the client's current secret",
    );
    // A refused update changes nothing, not even the token.
    const ok = await manage("PUT", r.client_id, r.registration_access_token, { ...update, client_secret: r.client_secret });
    expect(ok.status).toBe(200);
  });

  it("issues a secret to a client that becomes confidential, and drops it when it becomes public", async () => {
    const r = await register({ redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" });
    expect(r).not.toHaveProperty("client_secret");
    const toConfidential = (await (
      await manage("PUT", r.client_id, r.registration_access_token, { client_id: r.client_id, redirect_uris: [REDIRECT] })
    ).json()) as Registered;
    expect(toConfidential).toMatchObject({ token_endpoint_auth_method: "client_secret_basic", client_secret_expires_at: 0 });
    expect(toConfidential.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const toPublic = (await (
      await manage("PUT", r.client_id, toConfidential.registration_access_token, {
        client_id: r.client_id,
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: "none",
      })
    ).json()) as Registered;
    expect(toPublic.token_endpoint_auth_method).toBe("none");
    expect(toPublic).not.toHaveProperty("client_secret");
    expect(toPublic).not.toHaveProperty("client_secret_expires_at");
  });

  const refusals: Array<[string, (id: string) => Record<string, unknown>, string, string]> = [
    ["no client_id", () => ({ client_name: "x" }), "invalid_client_metadata", "client_id must be present and be this client's client_id"],
    ["another client_id", () => ({ client_id: "lk_other" }), "invalid_client_metadata", "client_id must be present and be this client's client_id"],
    ...(["registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"] as const).map(
      (name): [string, (id: string) => Record<string, unknown>, string, string] => [
        name,
        (id) => ({ client_id: id, [name]: 0 }),
        "invalid_client_metadata",
        `${name} is managed by the server and must not be sent`,
      ],
    ),
    ["a bad redirect URI", (id) => ({ client_id: id, redirect_uris: ["http://agent.example/cb"] }), "invalid_redirect_uri", /must use https/.source],
    [
      "a software statement",
      (id) => ({ client_id: id, software_statement: "eyJ.x.y" }),
      "invalid_software_statement",
      "software statements are not supported by this server",
    ],
    ["a non-string secret", (id) => ({ client_id: id, client_secret: 1 }), "invalid_client_metadata", "client_secret must be a string"],
  ];
  for (const [name, body, error, description] of refusals) {
    it(`refuses an update with ${name}`, async () => {
      const r = await register(confidential);
      const res = await manage("PUT", r.client_id, r.registration_access_token, body(r.client_id));
      await expectError(res, 400, error, error === "invalid_redirect_uri" ? new RegExp(description) : description);
      expect((await manage("GET", r.client_id, r.registration_access_token)).status).toBe(200);
    });
  }

  it("answers 401 to an update with a bad token, before anything changes", async () => {
    const r = await register(confidential);
    await expectBadToken(await manage("PUT", r.client_id, "lkm_wrong", { ...confidential, client_id: r.client_id, client_name: "Hijacked" }));
    const read = (await (await manage("GET", r.client_id, r.registration_access_token)).json()) as Registered;
    expect(read.client_name).toBe("Agent");
  });

  it("refuses an update whose jwks holds a key that does not import, or whose redirect URI is not an RFC 3986 URI", async () => {
    const r = await register(confidential);
    const keyed = { ...confidential, client_id: r.client_id, token_endpoint_auth_method: "private_key_jwt" };
    const junk = { kty: "EC", crv: "P-256", x: "bad", y: "bad", kid: "k1" };
    const res = await manage("PUT", r.client_id, r.registration_access_token, { ...keyed, jwks: { keys: [junk] } });
    await expectError(res, 400, "invalid_client_metadata", "jwks.keys.0: is not a usable ES256 public key");
    const dotted = { ...confidential, client_id: r.client_id, grant_types: ["authorization_code"], redirect_uris: ["https://agent.example/a/../cb"] };
    await expectError(
      await manage("PUT", r.client_id, r.registration_access_token, dotted),
      400,
      "invalid_redirect_uri",
      "redirect_uri 'https://agent.example/a/../cb' must not contain dot segments (/./ or /../)",
    );
  });

  it("checks the token before the body: a bad token learns nothing from the validation (RFC 6750 §3.1)", async () => {
    const r = await register(confidential);
    await expectBadToken(await manage("PUT", r.client_id, "lkm_wrong", { client_id: "another" }));
    await expectBadToken(await manage("PUT", r.client_id, "lkm_wrong", { client_id: r.client_id, grant_types: ["bogus"] }));
    await expectBadToken(
      await call(`/register/${r.client_id}`, { method: "PUT", headers: { Authorization: "Bearer lkm_wrong", "Content-Type": "text/plain" }, body: "x" }),
    );
    await expectBadToken(await manage("PUT", "lk_nobody", "lkm_wrong", { client_id: "lk_nobody" }));
  });
});

describe("DELETE /register/{client_id} (RFC 7592 §2.3)", () => {
  it("deletes the client and revokes its grants; its credentials stop working", async () => {
    const r = await register({
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "none",
      scope: "mcp:read",
    });
    const p = await pkce();
    const { code } = await obtainCode(
      { response_type: "code", client_id: r.client_id, code_challenge: p.challenge, code_challenge_method: "S256", resource: MCP_RESOURCE, scope: "mcp:read" },
      REDIRECT,
    );
    const tokens = (await (await postForm("/token", { grant_type: "authorization_code", client_id: r.client_id, code, code_verifier: p.verifier })).json()) as {
      refresh_token: string;
    };
    await expectBadToken(await manage("DELETE", r.client_id, "lkm_wrong"));

    const res = await manage("DELETE", r.client_id, r.registration_access_token);
    expect(res.status).toBe(204);
    await expectBadToken(await manage("GET", r.client_id, r.registration_access_token));
    await expectError(
      await postForm("/token", { grant_type: "refresh_token", client_id: r.client_id, refresh_token: tokens.refresh_token }),
      401,
      "invalid_client",
      "client authentication failed",
    );
    const handle = await parseHandle("refresh", tokens.refresh_token);
    const grant = env.GRANTS.get(env.GRANTS.idFromString(handle?.object_id as string));
    expect(await grant.status({ refresh_hash: handle?.hash, now: now() })).toEqual({ active: false });
  });

  it("answers 405 with Allow to other methods", async () => {
    const res = await call("/register/lk_x", { method: "POST" });
    expect(res.headers.get("allow")).toBe("GET, PUT, DELETE");
    await expectError(res, 405, "method_not_allowed", "use GET, PUT, DELETE");
  });
});
