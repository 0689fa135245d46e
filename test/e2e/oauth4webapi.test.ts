/**
 * Latchkey driven by oauth4webapi (a strict, certified OAuth 2 / OIDC client) through the real sign-in
 * and consent pages in headless Chromium: discovery, authorization code + PKCE for a confidential and
 * a public client, resource indicators, refresh rotation, introspection, revocation (of a user's grant and
 * of a client_credentials token) and userinfo.
 */
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from "jose";
import * as oauth from "oauth4webapi";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALICE,
  type AuthorizationServer,
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
import { type ConfidentialClient, codeRequest, discover, insecure, registerConfidential } from "./oauth4webapi-setup";

let server: AuthorizationServer;
let callback: CallbackServer;
let browser: TestBrowser;
let as: oauth.AuthorizationServer;
let confidential: ConfidentialClient;

beforeAll(async () => {
  [server, callback, browser] = await Promise.all([startServer(), startCallbackServer(), launchBrowser()]);
  as = await discover(server);
  confidential = await registerConfidential(server, {
    client_name: "oauth4webapi confidential",
    redirect_uris: [callback.redirectUri],
    grant_types: ["authorization_code", "refresh_token"],
  });
});

afterAll(() => stopAll(server, browser, callback));

interface Authorization {
  page: Page;
  state: string;
  verifier: string;
  /** The URL the browser landed on at the client's redirect URI. */
  landed: URL;
}

/**
 * Starts an authorization request (code + PKCE S256, with a fresh state) in a fresh browser, then lets
 * `interact` go through the pages, and returns where the browser landed at the client.
 */
async function authorize(clientId: string, params: Record<string, string>, interact: (page: Page) => Promise<void>): Promise<Authorization> {
  const { url, verifier, state } = await codeRequest(as, { client_id: clientId, redirect_uri: callback.redirectUri, ...params });
  const page = await browser.newPage();
  const response = await page.goto(url);
  expect(response?.status()).toBe(200);
  await interact(page);
  return { page, state, verifier, landed: await landedAt(page, callback) };
}

/** Sign in as Alice and allow: the ordinary path for a first authorization. */
const aliceAllows = async (page: Page) => {
  await signIn(page, ALICE);
  await consent(page, "Allow");
};

/** The token endpoint answered 200 with `Cache-Control: no-store` (OAuth 2.1 §3.2.3). */
function expectTokenResponseHeaders(response: Response): void {
  expect(response.status).toBe(200);
  expect(response.headers.get("cache-control")).toBe("no-store");
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
}

/** The error a process*Response function threw, which must be a ResponseBodyError. */
async function responseBodyError(promise: Promise<unknown>): Promise<oauth.ResponseBodyError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(oauth.ResponseBodyError);
  return error as oauth.ResponseBodyError;
}

/** RFC 7662 introspection of `token` by `caller` (default the confidential client), as oauth4webapi validates it. */
async function introspect(token: string, caller: ConfidentialClient = confidential): Promise<oauth.IntrospectionResponse> {
  return oauth.processIntrospectionResponse(as, caller.client, await oauth.introspectionRequest(as, caller.client, caller.auth, token, insecure));
}

describe("discovery (RFC 8414, OpenID Connect Discovery 1.0)", () => {
  it("describes the server at its issuer, which equals the URL it is reached at", async () => {
    expect(as.issuer).toBe(server.issuer);
    expect(as).toMatchObject({
      authorization_endpoint: `${server.issuer}/authorize`,
      token_endpoint: `${server.issuer}/token`,
      jwks_uri: `${server.issuer}/jwks`,
      userinfo_endpoint: `${server.issuer}/userinfo`,
      introspection_endpoint: `${server.issuer}/introspect`,
      revocation_endpoint: `${server.issuer}/revoke`,
      response_types_supported: ["code"],
      code_challenge_methods_supported: ["S256"],
      authorization_response_iss_parameter_supported: true,
      resource_indicators_supported: true,
    });
    expect(as.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(["client_secret_basic", "none"]));
    expect(as.introspection_endpoint_auth_methods_supported).not.toContain("none");

    const oauthMetadata = await oauth.processDiscoveryResponse(
      new URL(server.issuer),
      await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
    );
    expect(oauthMetadata).toEqual(as);
  });

  it("is refused over http without the loopback opt-in", async () => {
    await expect(oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oidc" })).rejects.toThrow(/only requests to HTTPS are allowed/);
  });
});

describe("confidential client (client_secret_basic): openid offline_access", () => {
  const nonce = oauth.generateRandomNonce();
  let tokens: oauth.TokenEndpointResponse;
  let accessClaims: ReturnType<typeof decodeJwt>;
  let authTime: number;

  it("signs in, consents and lands at the client with code, state and iss (RFC 9207)", async () => {
    const started = Math.floor(Date.now() / 1000);
    let consentText = "";
    const flow = await authorize(confidential.registered.client_id, { scope: "openid offline_access", nonce }, async (page) => {
      await signIn(page, ALICE);
      consentText = await consent(page, "Allow");
    });
    expect(consentText).toContain("oauth4webapi confidential");
    expect(consentText).toContain("Signed in as alice@example.com");
    expect(consentText).toMatch(/openid\s+offline_access/);
    expect([...flow.landed.searchParams.keys()].sort()).toEqual(["code", "iss", "state"]);
    expect(flow.landed.searchParams.get("iss")).toBe(server.issuer);
    expect(flow.landed.searchParams.get("state")).toBe(flow.state);

    // validateAuthResponse checks state and, since the metadata says so, iss.
    const params = oauth.validateAuthResponse(as, confidential.client, flow.landed, flow.state);
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      confidential.client,
      confidential.auth,
      params,
      callback.redirectUri,
      flow.verifier,
      insecure,
    );
    expectTokenResponseHeaders(response);
    expect(response.headers.get("pragma")).toBe("no-cache");
    const raw = (await response.clone().json()) as Record<string, unknown>;
    expect(Object.keys(raw).sort()).toEqual(["access_token", "expires_in", "id_token", "refresh_token", "scope", "token_type"]);
    expect(raw).toMatchObject({ token_type: "Bearer", expires_in: 600, scope: "openid offline_access" });

    tokens = await oauth.processAuthorizationCodeResponse(as, confidential.client, response, { expectedNonce: nonce, requireIdToken: true });
    const id = oauth.getValidatedIdTokenClaims(tokens) as oauth.IDToken;
    expect(id).toMatchObject({ iss: server.issuer, aud: confidential.registered.client_id, sub: ALICE.sub, nonce, amr: ["pwd"] });
    expect(decodeProtectedHeader(tokens.id_token as string)).toMatchObject({ alg: "RS256", typ: "JWT" });
    authTime = id.auth_time as number;
    expect(authTime).toBeGreaterThanOrEqual(started - 1);
    expect(authTime).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);

    // The access token is an RFC 9068 JWT for the issuer itself (no resource was asked for).
    const jwks = createRemoteJWKSet(new URL(as.jwks_uri as string));
    const verified = await jwtVerify(tokens.access_token, jwks, { issuer: server.issuer, audience: server.issuer, typ: "at+jwt" });
    accessClaims = verified.payload;
    expect(verified.protectedHeader.alg).toBe("ES256");
    expect(accessClaims).toMatchObject({
      iss: server.issuer,
      aud: server.issuer,
      sub: ALICE.sub,
      client_id: confidential.registered.client_id,
      scope: "openid offline_access",
      auth_time: authTime,
    });
    expect((accessClaims.exp as number) - (accessClaims.iat as number)).toBe(600);
    await jwtVerify(tokens.id_token as string, jwks, { issuer: server.issuer, audience: confidential.registered.client_id });
  });

  it("answers userinfo for the issuer-bound token", async () => {
    const response = await oauth.userInfoRequest(as, confidential.client, tokens.access_token, insecure);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const info = await oauth.processUserInfoResponse(as, confidential.client, ALICE.sub, response);
    expect(info).toEqual({ sub: ALICE.sub });
  });

  it("introspects the access token and the refresh token as active (RFC 7662)", async () => {
    const response = await oauth.introspectionRequest(as, confidential.client, confidential.auth, tokens.access_token, insecure);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await oauth.processIntrospectionResponse(as, confidential.client, response)).toEqual({
      active: true,
      iss: server.issuer,
      sub: ALICE.sub,
      aud: server.issuer,
      client_id: confidential.registered.client_id,
      token_type: "Bearer",
      scope: "openid offline_access",
      exp: accessClaims.exp,
      iat: accessClaims.iat,
      jti: accessClaims.jti,
      auth_time: authTime,
    });

    const refresh = await introspect(tokens.refresh_token as string);
    expect(refresh).toMatchObject({
      active: true,
      iss: server.issuer,
      sub: ALICE.sub,
      client_id: confidential.registered.client_id,
      scope: "openid offline_access",
    });
    expect(refresh.aud).toBeUndefined();
  });

  it("rotates the refresh token (OAuth 2.1 §4.3.1) and keeps the user and auth_time", async () => {
    const old = tokens.refresh_token as string;
    const response = await oauth.refreshTokenGrantRequest(as, confidential.client, confidential.auth, old, insecure);
    expectTokenResponseHeaders(response);
    const refreshed = await oauth.processRefreshTokenResponse(as, confidential.client, response);
    expect(refreshed.refresh_token).toEqual(expect.any(String));
    expect(refreshed.refresh_token).not.toBe(old);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed).toMatchObject({ token_type: "bearer", expires_in: 600, scope: "openid offline_access" });
    expect(decodeJwt(refreshed.access_token)).toMatchObject({
      sub: ALICE.sub,
      aud: server.issuer,
      client_id: confidential.registered.client_id,
      auth_time: authTime,
    });
    // OIDC Core §12.2: same iss, sub, aud; auth_time of the original authentication.
    const id = oauth.getValidatedIdTokenClaims(refreshed);
    expect(id).toMatchObject({ iss: server.issuer, sub: ALICE.sub, aud: confidential.registered.client_id, auth_time: authTime });

    // The successor is now the live token; the old one no longer introspects as active.
    expect((await introspect(refreshed.refresh_token as string)).active).toBe(true);
    expect(await introspect(old)).toEqual({ active: false });
    tokens = refreshed;
  });

  it("revokes the grant with its refresh token (RFC 7009): refresh fails with invalid_grant, introspection says inactive", async () => {
    const refreshToken = tokens.refresh_token as string;
    const response = await oauth.revocationRequest(as, confidential.client, confidential.auth, refreshToken, insecure);
    expect(response.status).toBe(200);
    expect(await oauth.processRevocationResponse(response)).toBeUndefined();

    const refused = await oauth.refreshTokenGrantRequest(as, confidential.client, confidential.auth, refreshToken, insecure);
    expect(refused.headers.get("cache-control")).toBe("no-store");
    const error = await responseBodyError(oauth.processRefreshTokenResponse(as, confidential.client, refused));
    expect({ status: error.status, error: error.error, error_description: error.error_description }).toEqual({
      status: 400,
      error: "invalid_grant",
      error_description: "the refresh token is invalid, expired or revoked",
    });

    for (const token of [refreshToken, tokens.access_token]) expect(await introspect(token)).toEqual({ active: false });
    // The access token of a revoked grant is refused at userinfo too.
    const userinfo = await oauth.userInfoRequest(as, confidential.client, tokens.access_token, insecure);
    expect(userinfo.status).toBe(401);
    expect(userinfo.headers.get("www-authenticate")).toMatch(/^Bearer error="invalid_token"/);
  });
});

describe("confidential client with a resource indicator (RFC 8707)", () => {
  it("binds the token to the MCP resource with mcp:read; userinfo refuses it with 401 invalid_token", async () => {
    let consentText = "";
    const flow = await authorize(confidential.registered.client_id, { scope: "mcp:read", resource: MCP_RESOURCE }, async (page) => {
      await signIn(page, ALICE);
      consentText = await consent(page, "Allow");
    });
    expect(consentText).toContain("mcp:read");
    expect(consentText).toContain(`Example MCP server ${MCP_RESOURCE}`);
    const params = oauth.validateAuthResponse(as, confidential.client, flow.landed, flow.state);
    const response = await oauth.authorizationCodeGrantRequest(as, confidential.client, confidential.auth, params, callback.redirectUri, flow.verifier, {
      ...insecure,
      additionalParameters: { resource: MCP_RESOURCE },
    });
    expectTokenResponseHeaders(response);
    const tokens = await oauth.processAuthorizationCodeResponse(as, confidential.client, response);
    expect(tokens.id_token).toBeUndefined();
    expect(tokens).toMatchObject({ token_type: "bearer", expires_in: 600, scope: "mcp:read", refresh_token: expect.any(String) });
    const claims = decodeJwt(tokens.access_token);
    expect(claims).toMatchObject({ iss: server.issuer, aud: MCP_RESOURCE, sub: ALICE.sub, client_id: confidential.registered.client_id, scope: "mcp:read" });

    expect(await introspect(tokens.access_token)).toMatchObject({
      active: true,
      aud: MCP_RESOURCE,
      sub: ALICE.sub,
      client_id: confidential.registered.client_id,
      scope: "mcp:read",
    });

    // A token for the MCP server is for the MCP server alone.
    const userinfo = await oauth.userInfoRequest(as, confidential.client, tokens.access_token, insecure);
    expect(userinfo.status).toBe(401);
    expect(userinfo.headers.get("cache-control")).toBe("no-store");
    const challenge = await oauth.processUserInfoResponse(as, confidential.client, ALICE.sub, userinfo).then(
      () => null,
      (e: unknown) => e,
    );
    expect(challenge).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const [bearer] = (challenge as oauth.WWWAuthenticateChallengeError).cause;
    expect(bearer).toMatchObject({
      scheme: "bearer",
      parameters: { error: "invalid_token", error_description: "the access token is bound to another resource" },
    });

    // Refreshing keeps the audience and the scope.
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      confidential.client,
      await oauth.refreshTokenGrantRequest(as, confidential.client, confidential.auth, tokens.refresh_token as string, insecure),
    );
    expect(decodeJwt(refreshed.access_token)).toMatchObject({ aud: MCP_RESOURCE, scope: "mcp:read", sub: ALICE.sub });
  });

  it("sends access_denied back to the client, with state and iss, when the user denies", async () => {
    const flow = await authorize(confidential.registered.client_id, { scope: "mcp:write", resource: MCP_RESOURCE }, async (page) => {
      await signIn(page, ALICE);
      await consent(page, "Deny");
    });
    expect(flow.landed.searchParams.get("iss")).toBe(server.issuer);
    const error = (() => {
      try {
        oauth.validateAuthResponse(as, confidential.client, flow.landed, flow.state);
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(oauth.AuthorizationResponseError);
    expect((error as oauth.AuthorizationResponseError).error).toBe("access_denied");
    expect((error as oauth.AuthorizationResponseError).error_description).toBe("the user denied the request");
  });
});

describe("client_credentials access token revocation (RFC 7009)", () => {
  let agent: ConfidentialClient;

  beforeAll(async () => {
    agent = await registerConfidential(server, { client_name: "oauth4webapi agent", grant_types: ["client_credentials"] });
  });

  /** A client_credentials access token of the agent for the MCP server, as oauth4webapi validates the response. */
  async function agentToken(): Promise<string> {
    const response = await oauth.clientCredentialsGrantRequest(as, agent.client, agent.auth, { resource: MCP_RESOURCE, scope: "mcp:read" }, insecure);
    expectTokenResponseHeaders(response);
    const tokens = await oauth.processClientCredentialsResponse(as, agent.client, response);
    expect(tokens).toEqual({ access_token: expect.any(String), token_type: "bearer", expires_in: 600, scope: "mcp:read" });
    return tokens.access_token;
  }

  /** RFC 7009 §2.2: 200 with an empty body, whether or not anything was revoked. */
  async function revokeAs(caller: ConfidentialClient, token: string): Promise<void> {
    const response = await oauth.revocationRequest(as, caller.client, caller.auth, token, {
      ...insecure,
      additionalParameters: { token_type_hint: "access_token" },
    });
    expect(response.status).toBe(200);
    expect(await response.clone().text()).toBe("");
    expect(await oauth.processRevocationResponse(response)).toBeUndefined();
  }

  it("is active, survives another client's revocation, and is inactive once its own client revokes it", async () => {
    const [token, kept] = [await agentToken(), await agentToken()];
    const claims = decodeJwt(token);
    const active = {
      active: true,
      iss: server.issuer,
      sub: agent.registered.client_id,
      aud: MCP_RESOURCE,
      client_id: agent.registered.client_id,
      token_type: "Bearer",
      scope: "mcp:read",
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
    };
    // An administrator-registered client (here the confidential one, standing as a resource server) and the
    // token's own client are told about it.
    expect(await introspect(token)).toEqual(active);
    expect(await introspect(token, agent)).toEqual(active);

    // A client revokes only its own tokens (RFC 7009 §2.1); another client's attempt is a silent no-op.
    await revokeAs(confidential, token);
    expect(await introspect(token)).toEqual(active);

    await revokeAs(agent, token);
    expect(await introspect(token)).toEqual({ active: false });
    expect(await introspect(token, agent)).toEqual({ active: false });
    // Only that token: the agent's other token stays active, and revoking again changes nothing.
    expect(await introspect(kept)).toMatchObject({ active: true, client_id: agent.registered.client_id, jti: decodeJwt(kept).jti });
    await revokeAs(agent, token);
    expect(await introspect(kept)).toMatchObject({ active: true });
  });
});

describe("public client (token_endpoint_auth_method none)", () => {
  let registered: RegisteredClient;
  let client: oauth.Client;

  beforeAll(async () => {
    registered = await createClient(server, {
      client_name: "oauth4webapi public",
      redirect_uris: [callback.redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "none",
      application_type: "native",
    });
    expect(registered.client_secret).toBeUndefined();
    client = { client_id: registered.client_id, token_endpoint_auth_method: "none" };
  });

  it("completes code + PKCE without a secret, and the code works only once", async () => {
    const nonce = oauth.generateRandomNonce();
    const flow = await authorize(registered.client_id, { scope: "openid offline_access", nonce }, aliceAllows);
    const params = oauth.validateAuthResponse(as, client, flow.landed, flow.state);
    const redeem = () => oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, callback.redirectUri, flow.verifier, insecure);
    const response = await redeem();
    expectTokenResponseHeaders(response);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: nonce, requireIdToken: true });
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ iss: server.issuer, aud: registered.client_id, sub: ALICE.sub, nonce });
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      aud: server.issuer,
      sub: ALICE.sub,
      client_id: registered.client_id,
      scope: "openid offline_access",
    });
    const info = await oauth.processUserInfoResponse(as, client, ALICE.sub, await oauth.userInfoRequest(as, client, tokens.access_token, insecure));
    expect(info).toEqual({ sub: ALICE.sub });

    // A public client rotates its refresh token too.
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token as string, insecure),
    );
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);

    // OAuth 2.1 §4.1.3: a code is single-use; a replay fails (and revokes what it issued, RFC 9700 §4.1).
    const replay = await redeem();
    expect(replay.headers.get("cache-control")).toBe("no-store");
    const error = await responseBodyError(oauth.processAuthorizationCodeResponse(as, client, replay));
    expect({ status: error.status, error: error.error }).toEqual({ status: 400, error: "invalid_grant" });
    const afterReplay = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshed.refresh_token as string, insecure);
    expect((await responseBodyError(oauth.processRefreshTokenResponse(as, client, afterReplay))).error).toBe("invalid_grant");
  });

  it("remembers consent, and refuses a wrong code_verifier with invalid_grant", async () => {
    // Alice allowed openid offline_access for this client above: signing in is enough for a subset.
    const flow = await authorize(registered.client_id, { scope: "openid" }, (page) => signIn(page, ALICE));
    const params = oauth.validateAuthResponse(as, client, flow.landed, flow.state);
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      oauth.None(),
      params,
      callback.redirectUri,
      oauth.generateRandomCodeVerifier(),
      insecure,
    );
    const error = await responseBodyError(oauth.processAuthorizationCodeResponse(as, client, response));
    expect({ status: error.status, error: error.error, error_description: error.error_description }).toEqual({
      status: 400,
      error: "invalid_grant",
      error_description: "code_verifier does not match the code_challenge",
    });
  });

  it("cannot introspect: introspection needs an authenticated client (RFC 7662 §2.1)", async () => {
    const response = await oauth.introspectionRequest(as, client, oauth.None(), "anything", insecure);
    const error = await responseBodyError(oauth.processIntrospectionResponse(as, client, response));
    expect({ status: error.status, error: error.error }).toEqual({ status: 401, error: "invalid_client" });
  });
});
