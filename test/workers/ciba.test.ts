import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { registry } from "../../workers/clients/cache";
import { setClock } from "../../workers/clock";
import { atHash } from "../../workers/tokens/access-token";
import { asClient, decideNewest, pollCiba, signedInBrowser } from "./approvals";
import { attestationHeaders, Instance, refreshBoundTo, TestAttester } from "./attestation";
import type { Browser } from "./browser";
import { DpopKey } from "./dpop";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";
import { signedPost, signingKey } from "./httpsig-signer";

/**
 * OpenID CIBA Core 1.0, poll mode: the backchannel authentication endpoint's every error (§13), the
 * token endpoint's (§11), and a real approval in the inbox; tokens as in the code flow.
 */
const CIBA = "urn:openid:params:grant-type:ciba";
let poller: CreatedClient;
let other: CreatedClient;
let pusher: CreatedClient;
let noCiba: CreatedClient;
let alice: Browser;

const cibaClient = (extra: Record<string, unknown> = {}) =>
  createClient({
    client_name: "Agent",
    grant_types: [CIBA, "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
    backchannel_token_delivery_mode: "poll",
    ...extra,
  });

beforeAll(async () => {
  [poller, other, pusher, noCiba] = await Promise.all([
    cibaClient(),
    cibaClient({ client_name: "Other agent" }),
    cibaClient({ backchannel_token_delivery_mode: "push", backchannel_client_notification_endpoint: "https://agent.example/cb" }),
    createClient({ client_name: "Web", redirect_uris: ["https://app.example/cb"], token_endpoint_auth_method: "client_secret_basic" }),
  ]);
  alice = await signedInBrowser();
});
afterEach(() => setClock());

const ask = (client: CreatedClient, fields: Record<string, string | string[]>) => asClient(client, "/bc-authorize", fields);
const aliceAsks = (fields: Record<string, string | string[]> = {}) =>
  ask(poller, { scope: "openid offline_access mcp:read", resource: MCP_RESOURCE, login_hint: "alice@example.com", binding_message: "W4SCT", ...fields });

async function authReqId(res: Response): Promise<string> {
  const body = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body.auth_req_id as string;
}

describe("backchannel authentication endpoint (CIBA §7)", () => {
  it("answers {auth_req_id, expires_in, interval} and queues the request in the user's inbox", async () => {
    const res = await aliceAsks();
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({ auth_req_id: expect.stringMatching(/^lka_[0-9a-f]{64}_[A-Za-z0-9_-]{43}$/), expires_in: 600, interval: 5 });
    const inbox = await (await alice.get("/inbox")).text();
    expect(inbox).toContain("W4SCT");
    expect(inbox).toContain("mcp:read");
    expect(inbox).toContain(MCP_RESOURCE);
  });

  it("honours a shorter requested_expiry and never exceeds the configured one", async () => {
    expect(((await (await aliceAsks({ requested_expiry: "120" })).json()) as { expires_in: number }).expires_in).toBe(120);
    expect(((await (await aliceAsks({ requested_expiry: "99999" })).json()) as { expires_in: number }).expires_in).toBe(600);
  });

  const refusals: Array<[string, Record<string, string>, number, string, string | RegExp]> = [
    ["no scope", { scope: "" }, 400, "invalid_scope", "scope must include openid"],
    ["a scope without openid", { scope: "mcp:read" }, 400, "invalid_scope", "scope must include openid"],
    ["no hint", { login_hint: "" }, 400, "invalid_request", "exactly one of login_hint, id_token_hint and login_hint_token is required"],
    ["two hints", { id_token_hint: "x.y.z" }, 400, "invalid_request", "exactly one of login_hint, id_token_hint and login_hint_token is required"],
    [
      "login_hint_token",
      { login_hint: "", login_hint_token: "abc" },
      400,
      "invalid_request",
      "login_hint_token is not supported; use login_hint or id_token_hint",
    ],
    ["an unknown user", { login_hint: "nobody@example.com" }, 400, "unknown_user_id", "login_hint does not identify a user of this server"],
    ["a malformed id_token_hint", { login_hint: "", id_token_hint: "not-a-jwt" }, 400, "invalid_request", "id_token_hint is not a JWT"],
    ["a long binding_message", { binding_message: "x".repeat(65) }, 400, "invalid_binding_message", /at most 64/],
    ["a binding_message with a control character", { binding_message: "a\u0007b" }, 400, "invalid_binding_message", /at most 64/],
    ["user_code", { user_code: "1234" }, 400, "invalid_request", "user_code is not supported by this server"],
    ["requested_expiry 0", { requested_expiry: "0" }, 400, "invalid_request", "requested_expiry must be a positive integer"],
    ["requested_expiry not a number", { requested_expiry: "soon" }, 400, "invalid_request", "requested_expiry must be a positive integer"],
    ["an unknown resource", { resource: "https://unknown.example/mcp" }, 400, "invalid_target", /is not known/],
    ["a scope the resource lacks", { scope: "openid files:write" }, 400, "invalid_scope", /files:write is not supported/],
    ["authorization_details", { authorization_details: "[]" }, 400, "invalid_request", /authorization_details is not supported/],
    ["a signed request", { request: "a.b.c" }, 400, "invalid_request", "signed authentication requests (request) are not supported"],
    ["acr_values", { acr_values: "urn:mace:incommon:iap:silver" }, 400, "invalid_request", "acr_values is not supported"],
    ["a grant_token that names no grant", { grant_token: "lkr_nope" }, 400, "invalid_request", /grant_token does not name an active grant/],
  ];
  for (const [what, fields, status, error, description] of refusals) {
    it(`refuses ${what} with ${status} ${error}`, async () => {
      await expectError(await aliceAsks(fields), status, error, description);
    });
  }

  it("refuses an access token as id_token_hint, and an ID token issued to another client", async () => {
    const tokens = await approvedTokens();
    await expectError(
      await aliceAsks({ login_hint: "", id_token_hint: tokens.access_token as string }),
      400,
      "invalid_request",
      "id_token_hint is not an ID token issued by this server",
    );
    await expectError(
      await ask(other, { scope: "openid", id_token_hint: tokens.id_token as string }),
      400,
      "invalid_request",
      "id_token_hint is not an ID token issued by this server to this client",
    );
  });

  it("accepts an expired ID token of ours as id_token_hint (CIBA §7.1) and queues the request for its subject", async () => {
    const tokens = await approvedTokens();
    const t = Date.now();
    setClock(() => t + 2 * 3600 * 1000);
    const res = await aliceAsks({ login_hint: "", id_token_hint: tokens.id_token as string, binding_message: "EXPIRED-HINT" });
    expect(res.status).toBe(200);
    expect(await (await alice.get("/inbox")).text()).toContain("EXPIRED-HINT");
  });

  it("requires client authentication, the CIBA grant, and a notification token in push mode", async () => {
    await expectError(await postForm("/bc-authorize", { scope: "openid", login_hint: "alice@example.com" }), 401, "invalid_client");
    await expectError(
      await postForm("/bc-authorize", { scope: "openid", login_hint: "alice@example.com" }, { Authorization: basic(poller.client_id, "wrong") }),
      401,
      "invalid_client",
      "client authentication failed",
    );
    await expectError(
      await ask(noCiba, { scope: "openid", login_hint: "alice@example.com" }),
      400,
      "unauthorized_client",
      "this client is not registered for the CIBA grant",
    );
    await expectError(
      await ask(pusher, { scope: "openid", login_hint: "alice@example.com" }),
      400,
      "invalid_request",
      "client_notification_token is required in push mode",
    );
    // It goes out as `Authorization: Bearer <token>`: RFC 6750 §2.1's b64token, nothing that could break the header.
    await expectError(
      await ask(pusher, { scope: "openid", login_hint: "alice@example.com", client_notification_token: 'a"b,c=d\\e' }),
      400,
      "invalid_request",
      "client_notification_token must be an RFC 6750 bearer token of at most 1024 characters",
    );
    const get = await call("/bc-authorize");
    expect(get.status).toBe(405);
  });

  it("refuses public clients (CIBA §7.1: the client MUST authenticate)", async () => {
    const spa = await createClient({ redirect_uris: ["https://spa.example/cb"], token_endpoint_auth_method: "none" });
    await expectError(
      await postForm("/bc-authorize", { client_id: spa.client_id, scope: "openid", login_hint: "alice@example.com" }),
      401,
      "invalid_client",
      "client authentication is required at the backchannel authentication endpoint",
    );
  });

  it("limits how many requests may wait for one user from one client (403 access_denied)", async () => {
    const flooder = await cibaClient({ client_name: "Flooder" });
    for (let i = 0; i < 10; i++) await authReqId(await ask(flooder, { scope: "openid", login_hint: "bob@example.com" }));
    await expectError(
      await ask(flooder, { scope: "openid", login_hint: "bob@example.com" }),
      403,
      "access_denied",
      "too many requests are waiting for this user; try again later",
    );
  });
});

/** The grants the Registry indexes under a client (what deleting the client would revoke). */
function grantsOf(clientId: string): Promise<string[]> {
  return runInDurableObject(registry(env), async (_, state) => [...(await state.storage.list({ prefix: `grant-of:client:${clientId}\n` })).keys()]);
}

/** A request alice approves at once; returns the token response. */
async function approvedTokens(fields: Record<string, string> = {}): Promise<Record<string, string>> {
  const binding = `B${crypto.randomUUID().slice(0, 8)}`;
  const id = await authReqId(await aliceAsks({ binding_message: binding, ...fields }));
  expect(await decideNewest(alice, "approve", binding)).toBe("/inbox?done=approved");
  const res = await pollCiba(poller, id);
  const body = (await res.json()) as Record<string, string>;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

describe("CIBA token requests (CIBA §10.1, §11)", () => {
  it("answers authorization_pending, then slow_down (interval + 5 s) when polled too fast", async () => {
    const id = await authReqId(await aliceAsks());
    await expectError(await pollCiba(poller, id), 400, "authorization_pending", "the user has not decided yet");
    await expectError(await pollCiba(poller, id), 400, "slow_down", "polling too fast; wait at least 10 seconds between requests");
    const t = Date.now();
    setClock(() => t + 11_000);
    await expectError(await pollCiba(poller, id), 400, "authorization_pending", "the user has not decided yet");
  });

  it("issues nothing for a user deleted after approving: the grant would escape the deletion's revocation", async () => {
    const created = await adminCall("POST", "/users", { email: "gone@example.com", password: "gone-password-12345", name: "Gone" });
    const { id: userId } = (await created.json()) as { id: string };
    const gone = await signedInBrowser("gone@example.com", "gone-password-12345");
    const id = await authReqId(
      await ask(poller, { scope: "openid mcp:read", resource: MCP_RESOURCE, login_hint: "gone@example.com", binding_message: "GONE" }),
    );
    await decideNewest(gone, "approve", "GONE");
    expect((await adminCall("DELETE", `/users/${userId}`)).status).toBe(204);
    await expectError(await pollCiba(poller, id), 400, "invalid_grant", "the user who approved this request no longer exists");
  });

  it("marks a request from a client that registered itself in the inbox; an administrator-registered one is not marked", async () => {
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.77" },
      body: JSON.stringify({
        client_name: "Latchkey Account Security",
        grant_types: [CIBA],
        token_endpoint_auth_method: "client_secret_basic",
        backchannel_token_delivery_mode: "poll",
      }),
    });
    const self = (await registered.json()) as CreatedClient;
    expect(registered.status).toBe(201);
    await authReqId(await ask(self, { scope: "openid", login_hint: "alice@example.com", binding_message: "SELF-REG" }));
    await authReqId(await aliceAsks({ binding_message: "ADMIN-REG" }));
    const html = await (await alice.get("/inbox")).text();
    const card = (binding: string) => html.split('<li class="request"').find((c) => c.includes(binding)) as string;
    const warning = "It registered itself; nobody at this server has verified who runs it, and its name is its own claim.";
    expect(card("SELF-REG")).toContain(warning);
    expect(card("ADMIN-REG")).not.toContain(warning);
  });

  it("issues tokens like the code flow exactly once after the user approves in the inbox", async () => {
    const id = await authReqId(await aliceAsks({ binding_message: "APPROVE-ME" }));
    await decideNewest(alice, "approve", "APPROVE-ME");
    const res = await pollCiba(poller, id);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, string>;
    expect(body).toEqual({
      access_token: expect.any(String),
      token_type: "Bearer",
      expires_in: 600,
      scope: "mcp:read",
      refresh_token: expect.stringMatching(/^lkr_/),
      id_token: expect.any(String),
    });
    const keys = createLocalJWKSet(await (await call("/jwks")).json());
    const at = await jwtVerify(body.access_token as string, keys, { issuer: ISSUER, audience: MCP_RESOURCE, typ: "at+jwt" });
    expect(at.payload).toMatchObject({ sub: "usr_dev_alice", client_id: poller.client_id, scope: "mcp:read" });
    const idt = await jwtVerify(body.id_token as string, keys, { issuer: ISSUER, audience: poller.client_id });
    expect(idt.payload).toMatchObject({ sub: "usr_dev_alice", amr: ["pwd"], at_hash: await atHash(body.access_token as string) });
    expect(idt.payload).not.toHaveProperty("urn:openid:params:jwt:claim:auth_req_id");
    // A poll at once could race an issue that fails and releases the approval: slow_down. Once the interval is over, it is used up.
    await expectError(await pollCiba(poller, id), 400, "slow_down", "polling too fast; wait at least 10 seconds between requests");
    const t = Date.now();
    setClock(() => t + 11_000);
    await expectError(await pollCiba(poller, id), 400, "invalid_grant", "the auth_req_id is invalid, expired or already used");
    setClock();

    // A real grant: refresh, introspection and revocation work as for any other.
    const auth = { Authorization: basic(poller.client_id, poller.client_secret as string) };
    const refreshed = await postForm("/token", { grant_type: "refresh_token", refresh_token: body.refresh_token as string }, auth);
    expect(refreshed.status).toBe(200);
    const rt = ((await refreshed.json()) as { refresh_token: string }).refresh_token;
    expect(await (await postForm("/introspect", { token: body.access_token as string }, auth)).json()).toMatchObject({ active: true, sub: "usr_dev_alice" });
    expect((await postForm("/revoke", { token: rt }, auth)).status).toBe(200);
    expect(await (await postForm("/introspect", { token: body.access_token as string }, auth)).json()).toEqual({ active: false });
  });

  it("refuses a resource the request was not for with invalid_target and keeps the approval: no grant, the next poll issues", async () => {
    const binding = `R${crypto.randomUUID().slice(0, 8)}`;
    const id = await authReqId(await aliceAsks({ binding_message: binding }));
    await decideNewest(alice, "approve", binding);
    const grantsBefore = await grantsOf(poller.client_id);
    await expectError(
      await pollCiba(poller, id, { resource: "https://other.example/" }),
      400,
      "invalid_target",
      "resource https://other.example/ was not granted",
    );
    expect(await grantsOf(poller.client_id)).toEqual(grantsBefore);
    const res = await pollCiba(poller, id);
    const body = (await res.json()) as Record<string, string>;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token as string)).toMatchObject({ aud: MCP_RESOURCE, sub: "usr_dev_alice" });
    expect(await grantsOf(poller.client_id)).toHaveLength(grantsBefore.length + 1);
    const t = Date.now();
    setClock(() => t + 11_000);
    await expectError(await pollCiba(poller, id), 400, "invalid_grant", "the auth_req_id is invalid, expired or already used");
  });

  it("answers access_denied when the user denies, and expired_token after expiry", async () => {
    const denied = await authReqId(await aliceAsks({ binding_message: "DENY-ME" }));
    expect(await decideNewest(alice, "deny", "DENY-ME")).toBe("/inbox?done=denied");
    await expectError(await pollCiba(poller, denied), 400, "access_denied", "the user denied the request");
    const late = await authReqId(await aliceAsks({ requested_expiry: "60" }));
    const t = Date.now();
    setClock(() => t + 61_000);
    await expectError(await pollCiba(poller, late), 400, "expired_token", "the auth_req_id has expired");
  });

  it("answers invalid_grant for unknown, malformed and other clients' ids; invalid_request without one", async () => {
    const id = await authReqId(await aliceAsks());
    await expectError(await pollCiba(other, id), 400, "invalid_grant", "the auth_req_id was issued to another client");
    await expectError(await pollCiba(poller, `${id.slice(0, -4)}AAAA`), 400, "invalid_grant", "the auth_req_id is invalid, expired or already used");
    await expectError(await pollCiba(poller, "lka_nonsense"), 400, "invalid_grant", "the auth_req_id is invalid, expired or already used");
    await expectError(await asClient(poller, "/token", { grant_type: CIBA }), 400, "invalid_request", "auth_req_id is required");
  });

  it("refuses push-mode clients at the token endpoint (unauthorized_client), and clients without the grant", async () => {
    await expectError(await pollCiba(pusher, "lka_x"), 400, "unauthorized_client", "this client receives its tokens by push, not from the token endpoint");
    await expectError(await pollCiba(noCiba, "lka_x"), 400, "unauthorized_client", `this client is not registered for the ${CIBA} grant`);
  });

  it("gives no refresh token without offline_access, and an ID token for the issuer audience without a resource", async () => {
    const body = await approvedTokens({ scope: "openid email", resource: [] as unknown as string });
    expect(body.refresh_token).toBeUndefined();
    expect(decodeJwt(body.access_token as string).aud).toBe(ISSUER);
    expect(body.scope).toBe("openid email");
  });
});

describe("token binding at the CIBA grant, as at the code grant (RFC 9449 §5)", () => {
  const BOTH = "an access token is bound to one key: send a DPoP proof or an HTTP message signature, not both";
  const request = (binding: string) => ({
    scope: "openid offline_access mcp:read",
    resource: MCP_RESOURCE,
    login_hint: "alice@example.com",
    binding_message: binding,
  });
  const newBinding = () => `K${crypto.randomUUID().slice(0, 8)}`;

  async function ok(res: Response): Promise<Record<string, string>> {
    const body = (await res.json()) as Record<string, string>;
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body;
  }

  it("binds the access token to the poll's DPoP key; a confidential client's refresh tokens stay bound to the client, not a key", async () => {
    const [key, otherKey] = await Promise.all([DpopKey.generate(), DpopKey.generate()]);
    const binding = newBinding();
    const id = await authReqId(await aliceAsks({ binding_message: binding }));
    await decideNewest(alice, "approve", binding);
    const auth = { Authorization: basic(poller.client_id, poller.client_secret as string) };
    const tokens = await ok(await postForm("/token", { grant_type: CIBA, auth_req_id: id }, { ...auth, DPoP: await key.proof() }));
    expect(tokens.token_type).toBe("DPoP");
    expect(decodeJwt(tokens.access_token as string).cnf).toEqual({ jkt: key.jkt });
    expect(tokens.id_token).toEqual(expect.any(String));
    const refresh = { grant_type: "refresh_token", refresh_token: tokens.refresh_token as string };
    const refreshed = await ok(await postForm("/token", refresh, { ...auth, DPoP: await otherKey.proof() }));
    expect(refreshed.token_type).toBe("DPoP");
    expect(decodeJwt(refreshed.access_token as string).cnf).toEqual({ jkt: otherKey.jkt });
  });

  it("refuses a poll with both a DPoP proof and an HTTP message signature before polling, so nothing is spent; a signed poll then gets an httpsig token", async () => {
    const key = await signingKey("ES256", "ciba-1");
    const signer = await cibaClient({ client_name: "Signing agent", token_endpoint_auth_method: "httpsig_client_auth", jwks: { keys: [key.jwk] } });
    const binding = newBinding();
    const id = await authReqId(await signedPost("/bc-authorize", { client_id: signer.client_id, ...request(binding) }, key));
    const poll = { grant_type: CIBA, auth_req_id: id, client_id: signer.client_id };
    const both = async () => signedPost("/token", poll, key, { headers: { dpop: await (await DpopKey.generate()).proof() } });
    // Refused before the queue is asked: not authorization_pending, and the next poll is not too fast.
    await expectError(await both(), 400, "invalid_request", BOTH);
    await expectError(await signedPost("/token", poll, key), 400, "authorization_pending", "the user has not decided yet");
    const t = Date.now();
    setClock(() => t + 11_000);
    await decideNewest(alice, "approve", binding);
    await expectError(await both(), 400, "invalid_request", BOTH);
    const tokens = await ok(await signedPost("/token", poll, key));
    expect(tokens.token_type).toBe("httpsig");
    const { kty, crv, x, y } = key.jwk;
    expect(decodeJwt(tokens.access_token as string).cnf).toEqual({ jwk: { kty, crv, x, y, kid: "ciba-1", alg: "ES256" } });
  });

  it("binds an attested client's refresh tokens to its Client Instance Key (draft-ietf-oauth-attestation-based-client-auth-11 §11)", async () => {
    const attested = await cibaClient({ client_name: "Attested agent", token_endpoint_auth_method: "attest_jwt_client_auth" });
    const attester = await TestAttester.generate("https://ciba-attester.example");
    await attester.register([attested.client_id]);
    const [instance, other] = await Promise.all([Instance.generate(), Instance.generate()]);
    const as = async (i: Instance) => attestationHeaders(await attester.attest(attested.client_id, i), await i.pop());
    const binding = newBinding();
    const id = await authReqId(await postForm("/bc-authorize", request(binding), await as(instance)));
    await decideNewest(alice, "approve", binding);
    const tokens = await ok(await postForm("/token", { grant_type: CIBA, auth_req_id: id }, await as(instance)));
    await ok(await refreshBoundTo(tokens.refresh_token as string, as, instance, other));
  });
});

describe("CIBA client metadata (CIBA §4)", () => {
  const refused: Array<[string, Record<string, unknown>, string | RegExp]> = [
    ["no delivery mode", {}, "backchannel_token_delivery_mode is required with the CIBA grant"],
    ["ping without an endpoint", { backchannel_token_delivery_mode: "ping" }, "backchannel_client_notification_endpoint is required in ping mode"],
    [
      "an http endpoint that is not loopback",
      { backchannel_token_delivery_mode: "push", backchannel_client_notification_endpoint: "http://agent.example/cb" },
      "backchannel_client_notification_endpoint must use https",
    ],
    [
      "an endpoint at a special-use address",
      { backchannel_token_delivery_mode: "ping", backchannel_client_notification_endpoint: "https://10.0.0.5/cb" },
      "backchannel_client_notification_endpoint must not point to a special-use IP address (private-use)",
    ],
    [
      "an endpoint on another port",
      { backchannel_token_delivery_mode: "ping", backchannel_client_notification_endpoint: "https://agent.example:8443/cb" },
      "backchannel_client_notification_endpoint must not use port 8443 (only 443 is allowed)",
    ],
    [
      "an endpoint in poll mode",
      { backchannel_token_delivery_mode: "poll", backchannel_client_notification_endpoint: "https://agent.example/cb" },
      "backchannel_client_notification_endpoint is only used in ping and push modes",
    ],
    ["a public client", { backchannel_token_delivery_mode: "poll", token_endpoint_auth_method: "none" }, "the CIBA grant requires a confidential client"],
    ["backchannel_user_code_parameter", { backchannel_token_delivery_mode: "poll", backchannel_user_code_parameter: true }, /user_code is not supported/],
    ["a request signing alg", { backchannel_token_delivery_mode: "poll", backchannel_authentication_request_signing_alg: "ES256" }, /not supported/],
  ];
  for (const [what, metadata, description] of refused) {
    it(`refuses ${what}`, async () => {
      const res = await call("/register", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ grant_types: [CIBA], token_endpoint_auth_method: "client_secret_basic", ...metadata }),
      });
      await expectError(res, 400, "invalid_client_metadata", description);
    });
  }

  it("refuses backchannel metadata without the grant, and accepts a loopback http endpoint in dev", async () => {
    const res = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ redirect_uris: ["https://app.example/cb"], backchannel_token_delivery_mode: "poll" }),
    });
    await expectError(res, 400, "invalid_client_metadata", "backchannel_* metadata needs the CIBA grant type");
    const loopback = await cibaClient({ backchannel_token_delivery_mode: "ping", backchannel_client_notification_endpoint: "http://127.0.0.1:9/cb" });
    expect(loopback).toMatchObject({ backchannel_token_delivery_mode: "ping", backchannel_client_notification_endpoint: "http://127.0.0.1:9/cb" });
  });
});

describe("abuse limits on the backchannel endpoint", () => {
  it("limits CIBA requests per client (BACKCHANNEL_LIMIT, 100 a minute in tests) with 429", { timeout: 60_000 }, async () => {
    const agent = await cibaClient({ client_name: "Busy agent" });
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 201 && !statuses.includes(429); i++) {
      last = await ask(agent, { scope: "openid", login_hint: `nobody${i}@example.com` });
      statuses.push(last.status);
    }
    // A fixed one-minute window: reached after 100 requests, or up to 200 when a boundary falls in between.
    const first = statuses.indexOf(429);
    expect(first).toBeGreaterThanOrEqual(100);
    expect(first).toBeLessThanOrEqual(200);
    expect(statuses.slice(0, first).every((s) => s === 400)).toBe(true);
    expect((last as Response).headers.get("retry-after")).toBe("60");
    await expectError(last as Response, 429, "temporarily_unavailable", "too many requests; try again later");
  });

  it("counts per client and IP: requests naming a client from one IP do not lock it out from another", { timeout: 60_000 }, async () => {
    const victim = await cibaClient({ client_name: "Named agent" });
    const fromElsewhere = () =>
      postForm(
        "/bc-authorize",
        { scope: "openid", login_hint: "alice@example.com" },
        { Authorization: basic(victim.client_id, "wrong"), "cf-connecting-ip": "198.51.100.7" },
      );
    let last = await fromElsewhere();
    for (let i = 0; i < 200 && last.status !== 429; i++) last = await fromElsewhere();
    await expectError(last, 429, "temporarily_unavailable", "too many requests; try again later");
    const own = await postForm(
      "/bc-authorize",
      { scope: "openid", login_hint: "alice@example.com" },
      { Authorization: basic(victim.client_id, victim.client_secret as string), "cf-connecting-ip": "203.0.113.9" },
    );
    expect(own.status, await own.clone().text()).toBe(200);
  });
});
