import { decodeJwt } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { USER_CODE_ALPHABET } from "../../workers/approvals/user-code";
import { setClock } from "../../workers/clock";
import { signedInBrowser } from "./approvals";
import { attestationHeaders, Instance, refreshBoundTo, TestAttester } from "./attestation";
import { Browser, hidden } from "./browser";
import { DpopKey } from "./dpop";
import { adminCall, type CreatedClient, call, createClient, expectError, MCP_RESOURCE, postForm } from "./helpers";
import { signedPost, signingKey } from "./httpsig-signer";

/**
 * RFC 8628 device authorization grant: the endpoint, polling semantics (§3.5), the `/device` page with
 * sign-in, user-code entry (case-insensitive, with or without the dash), brute-force limits (§5.1),
 * and approval through the ApprovalQueue.
 */
const DEVICE = "urn:ietf:params:oauth:grant-type:device_code";
let tv: CreatedClient;
let web: CreatedClient;

beforeAll(async () => {
  tv = await createClient({ client_name: "Living-room TV", grant_types: [DEVICE, "refresh_token"], token_endpoint_auth_method: "none" });
  web = await createClient({ redirect_uris: ["https://app.example/cb"], token_endpoint_auth_method: "none" });
});
afterEach(() => setClock());

interface DeviceAuthorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

async function start(client = tv, scope = "mcp:read offline_access"): Promise<DeviceAuthorization> {
  const res = await postForm("/device_authorization", { client_id: client.client_id, scope, resource: MCP_RESOURCE });
  const body = (await res.json()) as DeviceAuthorization;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

const poll = (deviceCode: string, client = tv) => postForm("/token", { grant_type: DEVICE, device_code: deviceCode, client_id: client.client_id });

/** Enters `typed` at /device and returns the confirmation (or error) page. */
async function enter(browser: Browser, typed: string): Promise<Response> {
  const form = await (await browser.get("/device")).text();
  return browser.post("/device", { user_code: typed, csrf: hidden(form, "csrf") });
}

async function decide(browser: Browser, page: Response, decision: "approve" | "deny"): Promise<Response> {
  const html = await page.text();
  return browser.post("/device/decide", {
    id: hidden(html, "id"),
    user_code: hidden(html, "user_code"),
    csrf: hidden(html, "csrf"),
    for: hidden(html, "for"),
    decision,
  });
}

describe("device authorization endpoint (RFC 8628 §3.1, §3.2)", () => {
  it("answers device_code, a readable user_code, the verification URIs, expires_in and interval", async () => {
    const d = await start();
    expect(d).toEqual({
      device_code: expect.stringMatching(/^lkd_[0-9a-f]{64}_[A-Za-z0-9_-]{43}$/),
      user_code: expect.stringMatching(new RegExp(`^[${USER_CODE_ALPHABET}]{4}-[${USER_CODE_ALPHABET}]{4}$`)),
      verification_uri: "http://localhost:8787/device",
      verification_uri_complete: `http://localhost:8787/device?user_code=${d.user_code}`,
      expires_in: 600,
      interval: 5,
    });
  });

  it("refuses clients without the grant, unknown resources and GET", async () => {
    await expectError(
      await postForm("/device_authorization", { client_id: web.client_id }),
      400,
      "unauthorized_client",
      "this client is not registered for the device_code grant",
    );
    await expectError(await postForm("/device_authorization", { client_id: tv.client_id, resource: "https://nope.example" }), 400, "invalid_target");
    await expectError(await postForm("/device_authorization", {}), 401, "invalid_client");
    expect((await call("/device_authorization")).status).toBe(405);
  });
});

describe("the /device page and the device_code grant (RFC 8628 §3.3–§3.5)", () => {
  it("sends a visitor without a session to sign in, and back to the code afterwards", async () => {
    const browser = new Browser();
    const res = await browser.get("/device?user_code=BCDF-GHJK");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/signin?next=${encodeURIComponent("/device?user_code=BCDF-GHJK")}`);
  });

  it("pending, slow_down, then approval by the user typing the code in lower case without the dash, exactly once", async () => {
    const d = await start();
    await expectError(await poll(d.device_code), 400, "authorization_pending", "the user has not decided yet");
    await expectError(await poll(d.device_code), 400, "slow_down", "polling too fast; wait at least 10 seconds between requests");
    const alice = await signedInBrowser("alice@example.com", "alice-dev-password", `/device?user_code=${d.user_code}`);
    const prefilled = await (await alice.get(`/device?user_code=${d.user_code}`)).text();
    expect(prefilled).toContain(`value="${d.user_code}"`);
    const confirm = await enter(alice, d.user_code.replace("-", "").toLowerCase());
    expect(confirm.status).toBe(200);
    expect(confirm.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await confirm.clone().text();
    expect(html).toContain("Living-room TV");
    expect(html).toContain("mcp:read");
    expect(html).toContain(d.user_code);
    const done = await decide(alice, confirm, "approve");
    expect(await done.text()).toContain("Device connected");
    const t = Date.now();
    setClock(() => t + 11_000);
    const res = await poll(d.device_code);
    const body = (await res.json()) as Record<string, string>;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ token_type: "Bearer", scope: "mcp:read", refresh_token: expect.stringMatching(/^lkr_/) });
    expect(decodeJwt(body.access_token as string)).toMatchObject({ sub: "usr_dev_alice", aud: MCP_RESOURCE, client_id: tv.client_id });
    setClock(() => t + 30_000);
    await expectError(await poll(d.device_code), 400, "invalid_grant", "the device_code is invalid, expired or already used");
    // The code is used up: entering it again finds nothing.
    expect(await (await enter(alice, d.user_code)).text()).toContain("That code is not valid");
  });

  it("the confirmation says which account answers, and answers only for it: another account signed in meanwhile is asked anew", async () => {
    const d = await start();
    const browser = await signedInBrowser("alice@example.com", "alice-dev-password", `/device?user_code=${d.user_code}`);
    const confirm = await enter(browser, d.user_code);
    const html = await confirm.clone().text();
    expect(html).toContain("Signed in as alice@example.com");
    // The same browser signs in as bob (another tab), then alice's page is submitted.
    const page = await browser.get("/signin?next=/inbox");
    const signin = await page.text();
    await browser.post("/signin", { email: "bob@example.com", password: "bob-dev-password", csrf: hidden(signin, "csrf"), next: "/inbox" });
    const answer = await browser.post("/device/decide", {
      id: hidden(html, "id"),
      user_code: hidden(html, "user_code"),
      csrf: hidden(html, "csrf"),
      for: hidden(html, "for"),
      decision: "approve",
    });
    expect(answer.status).toBe(200);
    const again = await answer.text();
    expect(again).toContain("Approve this device?");
    expect(again).toContain("Signed in as bob@example.com");
    await expectError(await poll(d.device_code), 400, "authorization_pending", "the user has not decided yet");
  });

  it("keeps the approval when a poll names a resource the request was not for (invalid_target)", async () => {
    const d = await start();
    const alice = await signedInBrowser("alice@example.com", "alice-dev-password", `/device?user_code=${d.user_code}`);
    expect(await (await decide(alice, await enter(alice, d.user_code), "approve")).text()).toContain("Device connected");
    await expectError(
      await postForm("/token", { grant_type: DEVICE, device_code: d.device_code, client_id: tv.client_id, resource: "https://other.example/" }),
      400,
      "invalid_target",
      "resource https://other.example/ was not granted",
    );
    const res = await poll(d.device_code);
    expect(res.status, await res.clone().text()).toBe(200);
    const t = Date.now();
    setClock(() => t + 11_000);
    await expectError(await poll(d.device_code), 400, "invalid_grant", "the device_code is invalid, expired or already used");
  });

  it("answers access_denied after a denial, expired_token after expiry, invalid_grant for another client", async () => {
    const denied = await start();
    const bob = await signedInBrowser("bob@example.com", "bob-dev-password", "/device");
    expect(await (await decide(bob, await enter(bob, denied.user_code), "deny")).text()).toContain("Device refused");
    await expectError(await poll(denied.device_code), 400, "access_denied", "the user denied the request");
    const other = await createClient({ grant_types: [DEVICE], token_endpoint_auth_method: "none" });
    const late = await start();
    await expectError(await poll(late.device_code, other), 400, "invalid_grant", "the device_code was issued to another client");
    const t = Date.now();
    setClock(() => t + 601_000);
    await expectError(await poll(late.device_code), 400, "expired_token", "the device_code has expired");
    await expectError(await postForm("/token", { grant_type: DEVICE, client_id: tv.client_id }), 400, "invalid_request", "device_code is required");
  });

  it("limits device authorization requests per client and IP (BACKCHANNEL_LIMIT, 100 a minute in tests) with 429", { timeout: 60_000 }, async () => {
    const ask = () =>
      postForm("/device_authorization", { client_id: tv.client_id, scope: "mcp:read", resource: MCP_RESOURCE }, { "cf-connecting-ip": "198.51.100.66" });
    let last = await ask();
    for (let i = 0; i < 200 && last.status !== 429; i++) last = await ask();
    await expectError(last, 429, "temporarily_unavailable", "too many requests; try again later");
    expect((await postForm("/device_authorization", { client_id: tv.client_id, scope: "mcp:read", resource: MCP_RESOURCE })).status).toBe(200);
  });

  it("counts wrong codes sent at once: no more than five are looked up", async () => {
    const created = await adminCall("POST", "/users", { email: "guesser@example.com", password: "guesser-password-1", name: "Guesser" });
    expect(created.status).toBe(201);
    const browser = await signedInBrowser("guesser@example.com", "guesser-password-1", "/device");
    const statuses = await Promise.all(Array.from({ length: 12 }, () => enter(browser, "CCCC-CCCC").then((r) => r.status)));
    expect(statuses.filter((s) => s === 400)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
  });

  it("stops a user after five wrong codes (429) until the window has passed", async () => {
    const browser = await signedInBrowser("bob@example.com", "bob-dev-password", "/device");
    for (let i = 0; i < 5; i++) {
      const res = await enter(browser, i % 2 ? "BBBB-BBBB" : "not a code");
      expect(res.status).toBe(400);
      expect(await res.text()).toContain("That code is not valid");
    }
    const d = await start();
    const blocked = await enter(browser, d.user_code);
    expect(blocked.status).toBe(429);
    expect(await blocked.text()).toContain("Too many wrong codes. Try again in 15 minutes.");
    const t = Date.now();
    setClock(() => t + 901_000);
    const later = await start();
    expect((await enter(browser, later.user_code)).status).toBe(200);
  });
});

describe("token binding at the device_code grant, as at the code grant (RFC 9449 §5)", () => {
  const REFRESH_BOUND = "the refresh token is bound to a DPoP key this request did not prove";
  const BOTH = "an access token is bound to one key: send a DPoP proof or an HTTP message signature, not both";
  type Tokens = { access_token: string; refresh_token: string; token_type: string };

  /** Has alice approve the device request `d` at /device. */
  async function approve(d: DeviceAuthorization): Promise<void> {
    const alice = await signedInBrowser("alice@example.com", "alice-dev-password", "/device");
    expect(await (await decide(alice, await enter(alice, d.user_code), "approve")).text()).toContain("Device connected");
  }

  async function ok(res: Response): Promise<Tokens> {
    const body = (await res.json()) as Tokens;
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body;
  }

  const withProof = async (key?: DpopKey): Promise<Record<string, string>> => (key ? { DPoP: await key.proof() } : {});
  const refresh = async (token: string, key?: DpopKey) =>
    postForm("/token", { grant_type: "refresh_token", refresh_token: token, client_id: tv.client_id }, await withProof(key));

  it("binds the access token to the poll's DPoP key, and a public client's refresh tokens to that key", async () => {
    const [key, otherKey] = await Promise.all([DpopKey.generate(), DpopKey.generate()]);
    const d = await start();
    await approve(d);
    const tokens = await ok(await postForm("/token", { grant_type: DEVICE, device_code: d.device_code, client_id: tv.client_id }, await withProof(key)));
    expect(tokens.token_type).toBe("DPoP");
    expect(decodeJwt(tokens.access_token).cnf).toEqual({ jkt: key.jkt });
    await expectError(await refresh(tokens.refresh_token, otherKey), 400, "invalid_grant", REFRESH_BOUND);
    await expectError(await refresh(tokens.refresh_token), 400, "invalid_grant", REFRESH_BOUND);
    const refreshed = await ok(await refresh(tokens.refresh_token, key));
    expect(refreshed.token_type).toBe("DPoP");
    expect(decodeJwt(refreshed.access_token).cnf).toEqual({ jkt: key.jkt });
  });

  it("refuses a poll with both a DPoP proof and an HTTP message signature before polling, so nothing is spent; a signed poll then gets an httpsig token", async () => {
    const key = await signingKey("ES256", "device-1");
    const signer = await createClient({ grant_types: [DEVICE, "refresh_token"], token_endpoint_auth_method: "httpsig_client_auth", jwks: { keys: [key.jwk] } });
    const asked = await signedPost("/device_authorization", { client_id: signer.client_id, scope: "mcp:read offline_access", resource: MCP_RESOURCE }, key);
    const d = (await asked.json()) as DeviceAuthorization;
    expect(asked.status, JSON.stringify(d)).toBe(200);
    const poll = { grant_type: DEVICE, device_code: d.device_code, client_id: signer.client_id };
    const both = async () => signedPost("/token", poll, key, { headers: { dpop: await (await DpopKey.generate()).proof() } });
    // Refused before the queue is asked: not authorization_pending, and the next poll is not too fast.
    await expectError(await both(), 400, "invalid_request", BOTH);
    await expectError(await signedPost("/token", poll, key), 400, "authorization_pending", "the user has not decided yet");
    const t = Date.now();
    setClock(() => t + 11_000);
    await approve(d);
    await expectError(await both(), 400, "invalid_request", BOTH);
    const tokens = await ok(await signedPost("/token", poll, key));
    expect(tokens.token_type).toBe("httpsig");
    const { kty, crv, x, y } = key.jwk;
    expect(decodeJwt(tokens.access_token).cnf).toEqual({ jwk: { kty, crv, x, y, kid: "device-1", alg: "ES256" } });
  });

  it("binds an attested client's refresh tokens to its Client Instance Key (draft-ietf-oauth-attestation-based-client-auth-11 §11)", async () => {
    const attested = await createClient({ grant_types: [DEVICE, "refresh_token"], token_endpoint_auth_method: "attest_jwt_client_auth" });
    const attester = await TestAttester.generate("https://device-attester.example");
    await attester.register([attested.client_id]);
    const [instance, other] = await Promise.all([Instance.generate(), Instance.generate()]);
    const as = async (i: Instance) => attestationHeaders(await attester.attest(attested.client_id, i), await i.pop());
    const asked = await postForm("/device_authorization", { scope: "mcp:read offline_access", resource: MCP_RESOURCE }, await as(instance));
    const d = (await asked.json()) as DeviceAuthorization;
    expect(asked.status, JSON.stringify(d)).toBe(200);
    await approve(d);
    const tokens = await ok(await postForm("/token", { grant_type: DEVICE, device_code: d.device_code }, await as(instance)));
    await ok(await refreshBoundTo(tokens.refresh_token, as, instance, other));
  });
});
