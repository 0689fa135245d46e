/**
 * Latchkey driven by openid-client v6 (a certified OpenID Connect relying party) through the real
 * sign-in and consent pages in headless Chromium: discovery, authorization code + PKCE with nonce and
 * state, userinfo, refresh, introspection, revocation, silent authorization (`prompt=none`) and a
 * resource-bound token (and userinfo for its grant through a token for the issuer), and RP-initiated
 * logout, for a confidential client using client_secret_post.
 */
import { decodeJwt } from "jose";
import * as client from "openid-client";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALICE,
  type AuthorizationServer,
  BOB,
  type CallbackServer,
  consent,
  createClient,
  landedAt,
  launchBrowser,
  MCP_RESOURCE,
  type RegisteredClient,
  signIn,
  startCallbackServer,
  startServer,
  stopAll,
  type TestBrowser,
} from "./harness";

let server: AuthorizationServer;
let callback: CallbackServer;
let browser: TestBrowser;
let registered: RegisteredClient;
let config: client.Configuration;
/** Every response openid-client received, so that headers can be asserted (it only hands out bodies). */
const seen: Array<{ url: string; status: number; headers: Headers }> = [];

beforeAll(async () => {
  [server, callback, browser] = await Promise.all([startServer(), startCallbackServer(), launchBrowser()]);
  registered = await createClient(server, {
    client_name: "openid-client app",
    redirect_uris: [callback.redirectUri],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_post",
    post_logout_redirect_uris: [callback.redirectUri],
  });
  // http://localhost is a loopback issuer: openid-client needs allowInsecureRequests for it.
  config = await client.discovery(new URL(server.issuer), registered.client_id, undefined, client.ClientSecretPost(registered.client_secret), {
    execute: [client.allowInsecureRequests],
  });
  config[client.customFetch] = async (url, options) => {
    const response = await fetch(url, options as RequestInit);
    seen.push({ url, status: response.status, headers: response.headers });
    return response;
  };
});

afterAll(() => stopAll(server, browser, callback));

/** The last response openid-client received from `endpoint`. */
function lastResponseFrom(endpoint: string | undefined) {
  const hit = seen.findLast((r) => r.url === endpoint);
  expect(hit, `no response from ${endpoint}`).toBeDefined();
  return hit as (typeof seen)[number];
}

interface Checks {
  pkceCodeVerifier: string;
  expectedState: string;
  expectedNonce: string;
}

/** A fresh code + PKCE (S256) authorization URL with state and nonce, and the checks to redeem it with. */
async function authorizationUrl(params: Record<string, string>): Promise<{ url: URL; checks: Checks }> {
  const checks = { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: client.randomState(), expectedNonce: client.randomNonce() };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: callback.redirectUri,
    code_challenge: await client.calculatePKCECodeChallenge(checks.pkceCodeVerifier),
    code_challenge_method: "S256",
    state: checks.expectedState,
    nonce: checks.expectedNonce,
    ...params,
  });
  return { url, checks };
}

/** Opens `url` in `page` and lets `interact` go through the pages until the browser lands at the client. */
async function visit(page: Page, url: URL, interact: (page: Page) => Promise<void>): Promise<URL> {
  await page.goto(url.href);
  await interact(page);
  return landedAt(page, callback);
}

/** The error a promise rejected with. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

describe("discovery", () => {
  it("finds the server's metadata at its issuer", () => {
    const metadata = config.serverMetadata();
    expect(metadata.issuer).toBe(server.issuer);
    expect(metadata.supportsPKCE()).toBe(true);
    expect(metadata.supportsPKCE("plain")).toBe(false);
    expect(metadata).toMatchObject({
      authorization_endpoint: `${server.issuer}/authorize`,
      token_endpoint: `${server.issuer}/token`,
      userinfo_endpoint: `${server.issuer}/userinfo`,
      authorization_response_iss_parameter_supported: true,
    });
    expect(config.clientMetadata().client_id).toBe(registered.client_id);
  });

  it("refuses the http issuer without allowInsecureRequests", async () => {
    const error = await rejection(client.discovery(new URL(server.issuer), registered.client_id));
    expect(error).toBeInstanceOf(client.ClientError);
    expect((error as client.ClientError).code).toBe("OAUTH_HTTP_REQUEST_FORBIDDEN");
  });
});

describe("authorization code + PKCE for Alice (openid offline_access)", () => {
  let page: Page;
  let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;

  it("signs in and consents in the browser; authorizationCodeGrant checks state, iss, PKCE and nonce", async () => {
    const { url, checks } = await authorizationUrl({ scope: "openid offline_access" });
    expect(url.origin + url.pathname).toBe(`${server.issuer}/authorize`);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({ client_id: registered.client_id, response_type: "code", code_challenge_method: "S256" });

    page = await browser.newPage();
    const landed = await visit(page, url, async (p) => {
      await signIn(p, ALICE);
      expect(await consent(p, "Allow")).toContain("openid-client app");
    });
    expect(landed.searchParams.get("iss")).toBe(server.issuer);
    expect(landed.searchParams.get("state")).toBe(checks.expectedState);

    tokens = await client.authorizationCodeGrant(config, landed, checks);
    const response = lastResponseFrom(config.serverMetadata().token_endpoint);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");

    expect(tokens).toMatchObject({ token_type: "bearer", expires_in: 600, scope: "openid offline_access" });
    expect(tokens.expiresIn()).toBeGreaterThan(590);
    expect(tokens.claims()).toMatchObject({ iss: server.issuer, aud: registered.client_id, sub: ALICE.sub, nonce: checks.expectedNonce, amr: ["pwd"] });
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      iss: server.issuer,
      aud: server.issuer,
      sub: ALICE.sub,
      client_id: registered.client_id,
      scope: "openid offline_access",
    });
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  it("fetches userinfo with the access token", async () => {
    expect(await client.fetchUserInfo(config, tokens.access_token, ALICE.sub)).toEqual({ sub: ALICE.sub });
    const response = lastResponseFrom(config.serverMetadata().userinfo_endpoint);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
  });

  it("refreshes with rotation, introspects with client_secret_post, and revokes", async () => {
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token as string);
    expect(lastResponseFrom(config.serverMetadata().token_endpoint).headers.get("cache-control")).toBe("no-store");
    expect(refreshed.refresh_token).toEqual(expect.any(String));
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed).toMatchObject({ token_type: "bearer", expires_in: 600, scope: "openid offline_access" });
    expect(refreshed.claims()).toMatchObject({ iss: server.issuer, aud: registered.client_id, sub: ALICE.sub, auth_time: tokens.claims()?.auth_time });

    // OAuth 2.1 §4.3.1: a refresh may narrow the scope but never widen it. A refused request
    // changes nothing: the presented refresh token stays the live one.
    const widened = await rejection(client.refreshTokenGrant(config, refreshed.refresh_token as string, { scope: "openid profile" }));
    expect(widened).toBeInstanceOf(client.ResponseBodyError);
    expect({ status: (widened as client.ResponseBodyError).status, error: (widened as client.ResponseBodyError).error }).toEqual({
      status: 400,
      error: "invalid_scope",
    });
    expect(await client.tokenIntrospection(config, refreshed.refresh_token as string)).toMatchObject({ active: true, sub: ALICE.sub });

    const introspected = await client.tokenIntrospection(config, refreshed.access_token);
    expect(introspected).toMatchObject({ active: true, iss: server.issuer, sub: ALICE.sub, aud: server.issuer, client_id: registered.client_id });
    expect(lastResponseFrom(config.serverMetadata().introspection_endpoint).headers.get("cache-control")).toBe("no-store");

    await client.tokenRevocation(config, refreshed.refresh_token as string);
    expect(lastResponseFrom(config.serverMetadata().revocation_endpoint).status).toBe(200);
    const refused = await rejection(client.refreshTokenGrant(config, refreshed.refresh_token as string));
    expect(refused).toBeInstanceOf(client.ResponseBodyError);
    expect({ status: (refused as client.ResponseBodyError).status, error: (refused as client.ResponseBodyError).error }).toEqual({
      status: 400,
      error: "invalid_grant",
    });
    expect(await client.tokenIntrospection(config, refreshed.access_token)).toEqual({ active: false });
  });

  it("authorizes silently with prompt=none once signed in and consented (OIDC Core §3.1.2.1)", async () => {
    const { url, checks } = await authorizationUrl({ scope: "openid", prompt: "none" });
    const landed = await visit(page, url, async () => {});
    const silent = await client.authorizationCodeGrant(config, landed, checks);
    expect(silent.claims()).toMatchObject({ sub: ALICE.sub, nonce: checks.expectedNonce });
    expect(silent.refresh_token).toBeUndefined();
  });

  it("answers prompt=none in a browser nobody signed in to with login_required", async () => {
    const { url, checks } = await authorizationUrl({ scope: "openid", prompt: "none" });
    const landed = await visit(await browser.newPage(), url, async () => {});
    expect(landed.searchParams.get("iss")).toBe(server.issuer);
    const error = await rejection(client.authorizationCodeGrant(config, landed, checks));
    expect(error).toBeInstanceOf(client.AuthorizationResponseError);
    expect((error as client.AuthorizationResponseError).error).toBe("login_required");
  });
});

describe("Bob, a mistyped password, and a token for the MCP server", () => {
  it("shows the sign-in error, then issues a resource-bound token that userinfo refuses", async () => {
    const { url, checks } = await authorizationUrl({ scope: "openid mcp:write", resource: MCP_RESOURCE });
    const page = await browser.newPage();
    let consentText = "";
    const landed = await visit(page, url, async (p) => {
      await signIn(p, { email: BOB.email, password: "not-bobs-password" });
      await expect.poll(() => p.getByRole("alert").textContent()).toBe("The email or password is incorrect.");
      expect(await p.getByLabel("Email").inputValue()).toBe(BOB.email);
      await signIn(p, BOB);
      consentText = await consent(p, "Allow");
    });
    expect(consentText).toContain("Signed in as bob@example.com");
    expect(consentText).toContain(MCP_RESOURCE);

    const tokens = await client.authorizationCodeGrant(config, landed, checks, { resource: MCP_RESOURCE });
    expect(tokens.claims()).toMatchObject({ iss: server.issuer, aud: registered.client_id, sub: BOB.sub, nonce: checks.expectedNonce });
    expect(tokens.scope).toBe("mcp:write");
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      iss: server.issuer,
      aud: MCP_RESOURCE,
      sub: BOB.sub,
      client_id: registered.client_id,
      scope: "mcp:write",
    });

    const error = await rejection(client.fetchUserInfo(config, tokens.access_token, BOB.sub));
    expect(error).toBeInstanceOf(client.WWWAuthenticateChallengeError);
    const challenge = error as client.WWWAuthenticateChallengeError;
    expect(challenge.status).toBe(401);
    expect(challenge.cause[0]).toMatchObject({ scheme: "bearer", parameters: { error: "invalid_token" } });
  });
});

describe("a grant bound to the MCP server reaches userinfo through a token for the issuer (OIDC Core §5.3)", () => {
  const scope = "openid profile email offline_access mcp:read";
  /** What userinfo answers for Alice under `profile email` (the seeded user's name). */
  const aliceInfo = { sub: ALICE.sub, name: "Alice Example", email: ALICE.email };
  let page: Page;

  /** userinfo through openid-client, which checks the answer's `sub` against `idTokenSub`, the ID token's. */
  async function userinfoFor(accessToken: string, idTokenSub: string) {
    const info = await client.fetchUserInfo(config, accessToken, idTokenSub);
    const response = lastResponseFrom(config.serverMetadata().userinfo_endpoint);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    return info;
  }

  it("redeems the code for the MCP server, and a refresh with resource=<issuer> gives the token userinfo accepts", async () => {
    const { url, checks } = await authorizationUrl({ scope, resource: MCP_RESOURCE });
    page = await browser.newPage();
    const landed = await visit(page, url, async (p) => {
      await signIn(p, ALICE);
      expect(await consent(p, "Allow")).toContain(MCP_RESOURCE);
    });
    const tokens = await client.authorizationCodeGrant(config, landed, checks);
    expect(tokens.claims()).toMatchObject({ iss: server.issuer, aud: registered.client_id, sub: ALICE.sub, nonce: checks.expectedNonce });
    expect(tokens).toMatchObject({ token_type: "bearer", expires_in: 600, scope: "mcp:read", refresh_token: expect.any(String) });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: MCP_RESOURCE, sub: ALICE.sub, client_id: registered.client_id, scope: "mcp:read" });

    const forIssuer = await client.refreshTokenGrant(config, tokens.refresh_token as string, { resource: server.issuer });
    const response = lastResponseFrom(config.serverMetadata().token_endpoint);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(forIssuer).toMatchObject({ token_type: "bearer", expires_in: 600, scope: "openid profile email offline_access" });
    expect(forIssuer.claims()).toMatchObject({ iss: server.issuer, aud: registered.client_id, sub: ALICE.sub });
    expect(decodeJwt(forIssuer.access_token)).toMatchObject({
      iss: server.issuer,
      aud: server.issuer,
      sub: ALICE.sub,
      client_id: registered.client_id,
      scope: "openid profile email offline_access",
    });
    expect(await userinfoFor(forIssuer.access_token, tokens.claims()?.sub as string)).toEqual(aliceInfo);
  });

  it("redeems the code with resource=<issuer> as well; the grant still gives MCP tokens on refresh", async () => {
    // Alice is signed in and consented to this very request above: the browser comes straight back.
    const { url, checks } = await authorizationUrl({ scope, resource: MCP_RESOURCE });
    const landed = await visit(page, url, async () => {});
    const tokens = await client.authorizationCodeGrant(config, landed, checks, { resource: server.issuer });
    expect(tokens.claims()).toMatchObject({ sub: ALICE.sub, nonce: checks.expectedNonce });
    expect(tokens.scope).toBe("openid profile email offline_access");
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: server.issuer, sub: ALICE.sub, scope: "openid profile email offline_access" });
    expect(await userinfoFor(tokens.access_token, tokens.claims()?.sub as string)).toEqual(aliceInfo);

    const forResource = await client.refreshTokenGrant(config, tokens.refresh_token as string);
    expect(forResource.scope).toBe("mcp:read");
    expect(decodeJwt(forResource.access_token)).toMatchObject({ aud: MCP_RESOURCE, sub: ALICE.sub, scope: "mcp:read" });
  });
});

describe("RP-initiated logout (buildEndSessionUrl)", () => {
  it("signs the user out with the ID token as hint and returns to the registered URI with state", async () => {
    const { url, checks } = await authorizationUrl({ scope: "openid" });
    const page = await browser.newPage();
    const landed = await visit(page, url, async (p) => {
      await signIn(p, ALICE);
      // Consent to this client may be remembered from an earlier test; otherwise it is asked for now.
      const allow = p.getByRole("button", { name: "Allow" });
      await Promise.race([p.waitForURL((u) => u.href.startsWith(`${callback.redirectUri}?`)), allow.waitFor()]);
      if (await allow.isVisible()) await allow.click();
    });
    const tokens = await client.authorizationCodeGrant(config, landed, checks);
    const endSession = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token as string,
      post_logout_redirect_uri: callback.redirectUri,
      state: "bye",
    });
    expect(endSession.origin + endSession.pathname).toBe(`${server.issuer}/logout`);
    await page.goto(endSession.href);
    const back = await landedAt(page, callback);
    expect(back.searchParams.get("state")).toBe("bye");
    // Signed out: the next authorization request asks for a sign-in again.
    await page.goto((await authorizationUrl({ scope: "openid" })).url.href);
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Sign in");
  });
});
