/**
 * DPoP (RFC 9449) end to end with oauth4webapi's DPoP support, through the real sign-in and consent pages
 * in headless Chromium: a public client registered with dpop_bound_access_tokens binds its code with
 * dpop_jkt, meets the nonce round trip, gets DPoP-bound tokens, calls userinfo with proofs, and refreshes
 * with its key only; a confidential agent's DPoP-bound token is accepted by the resource-server kit.
 */
import { decodeJwt } from "jose";
import * as oauth from "oauth4webapi";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, requireAccessToken, type TokenVariables } from "../../workers/resource-server";
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
import { discover, insecure } from "./oauth4webapi-setup";

const ALGS = ["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"];

let server: AuthorizationServer;
let callback: CallbackServer;
let browser: TestBrowser;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  [server, callback, browser] = await Promise.all([startServer(), startCallbackServer(), launchBrowser()]);
  as = await discover(server);
});

afterAll(() => stopAll(server, browser, callback));

/** The error a process*Response function threw. */
async function thrown(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => null,
    (e: unknown) => e,
  );
}

/**
 * Sends a request with a DPoP handle the way oauth4webapi documents it: if the server answers
 * use_dpop_nonce, the handle has cached the new nonce, so the request is sent once more.
 * Returns the processed result and how many nonce errors preceded it.
 */
async function withNonceRetry<T>(send: () => Promise<Response>, process: (r: Response) => Promise<T>): Promise<{ result: T; nonceErrors: number }> {
  let nonceErrors = 0;
  for (;;) {
    try {
      return { result: await process(await send()), nonceErrors };
    } catch (error) {
      if (!oauth.isDPoPNonceError(error) || nonceErrors > 0) throw error;
      nonceErrors++;
    }
  }
}

describe("discovery", () => {
  it("advertises DPoP and its proof algorithms (RFC 9449 §5.1)", () => {
    expect(as.dpop_signing_alg_values_supported).toEqual(ALGS);
  });
});

describe("public client with dpop_bound_access_tokens: code flow, userinfo, refresh", () => {
  let registered: RegisteredClient;
  let client: oauth.Client;
  let dpop: oauth.DPoPHandle;
  let jkt: string;
  let tokens: oauth.TokenEndpointResponse;

  beforeAll(async () => {
    registered = await createClient(server, {
      client_name: "oauth4webapi DPoP",
      redirect_uris: [callback.redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "none",
      application_type: "native",
      dpop_bound_access_tokens: true,
    });
    expect(registered.dpop_bound_access_tokens).toBe(true);
    client = { client_id: registered.client_id, token_endpoint_auth_method: "none" };
    dpop = oauth.DPoP(client, await oauth.generateKeyPair("ES256"));
    jkt = await dpop.calculateThumbprint();
  });

  it("binds the code with dpop_jkt, answers the first proof with use_dpop_nonce, then issues DPoP-bound tokens", async () => {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const url = new URL(as.authorization_endpoint as string);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: client.client_id,
      redirect_uri: callback.redirectUri,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      scope: "openid offline_access",
      state,
      nonce,
      dpop_jkt: jkt,
    }).toString();
    const page: Page = await browser.newPage();
    expect((await page.goto(url.href))?.status()).toBe(200);
    await signIn(page, ALICE);
    await consent(page, "Allow");
    const params = oauth.validateAuthResponse(as, client, await landedAt(page, callback), state);

    // The raw first answer: 400 use_dpop_nonce with the nonce to use (RFC 9449 §8).
    const first = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, callback.redirectUri, verifier, { DPoP: dpop, ...insecure });
    expect(first.status).toBe(400);
    expect(first.headers.get("dpop-nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const nonceError = await thrown(oauth.processAuthorizationCodeResponse(as, client, first, { expectedNonce: nonce, requireIdToken: true }));
    expect(oauth.isDPoPNonceError(nonceError)).toBe(true);
    expect((nonceError as oauth.ResponseBodyError).error_description).toBe("the authorization server requires a nonce in the DPoP proof");

    // The code was not used up by the refused attempt; the retry carries the nonce the handle cached.
    const second = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, callback.redirectUri, verifier, { DPoP: dpop, ...insecure });
    expect(second.status).toBe(200);
    expect(second.headers.get("dpop-nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    tokens = await oauth.processAuthorizationCodeResponse(as, client, second, { expectedNonce: nonce, requireIdToken: true });
    expect(tokens.token_type).toBe("dpop");
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: ALICE.sub, aud: server.issuer, client_id: client.client_id, cnf: { jkt } });
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ sub: ALICE.sub, nonce });
  });

  it("answers userinfo for the DPoP-bound token with a proof, and refuses it as a Bearer token", async () => {
    const response = await oauth.userInfoRequest(as, client, tokens.access_token, { DPoP: dpop, ...insecure });
    expect(response.status).toBe(200);
    expect(await oauth.processUserInfoResponse(as, client, ALICE.sub, response)).toEqual({ sub: ALICE.sub });

    const bearer = await oauth.userInfoRequest(as, client, tokens.access_token, insecure);
    expect(bearer.status).toBe(401);
    const error = await thrown(oauth.processUserInfoResponse(as, client, ALICE.sub, bearer));
    expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenges = (error as oauth.WWWAuthenticateChallengeError).cause;
    expect(challenges).toEqual([
      {
        scheme: "bearer",
        parameters: { error: "invalid_token", error_description: "the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof" },
      },
      { scheme: "dpop", parameters: { algs: ALGS.join(" ") } },
    ]);
  });

  it("refreshes only with its own key: the rotated tokens stay bound, another key gets invalid_grant", async () => {
    const { result: refreshed, nonceErrors } = await withNonceRetry(
      () => oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token as string, { DPoP: dpop, ...insecure }),
      (r) => oauth.processRefreshTokenResponse(as, client, r),
    );
    // The handle kept the nonce from the last response: no round trip.
    expect(nonceErrors).toBe(0);
    expect(refreshed.token_type).toBe("dpop");
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(decodeJwt(refreshed.access_token).cnf).toEqual({ jkt });

    // Another key (a thief with the refresh token but not the key): refused, and nothing is revoked.
    const thief = oauth.DPoP(client, await oauth.generateKeyPair("ES256"));
    const error = await thrown(
      withNonceRetry(
        () => oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshed.refresh_token as string, { DPoP: thief, ...insecure }),
        (r) => oauth.processRefreshTokenResponse(as, client, r),
      ),
    );
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    expect({ error: (error as oauth.ResponseBodyError).error, description: (error as oauth.ResponseBodyError).error_description }).toEqual({
      error: "invalid_grant",
      description: "the refresh token is bound to a DPoP key this request did not prove",
    });

    // Without DPoP at all, this client is refused outright (dpop_bound_access_tokens).
    const plain = await thrown(
      oauth
        .refreshTokenGrantRequest(as, client, oauth.None(), refreshed.refresh_token as string, insecure)
        .then((r) => oauth.processRefreshTokenResponse(as, client, r)),
    );
    expect((plain as oauth.ResponseBodyError).error).toBe("invalid_dpop_proof");

    const again = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshed.refresh_token as string, { DPoP: dpop, ...insecure }),
    );
    expect(decodeJwt(again.access_token).cnf).toEqual({ jkt });
    const info = await oauth.processUserInfoResponse(
      as,
      client,
      ALICE.sub,
      await oauth.userInfoRequest(as, client, again.access_token, { DPoP: dpop, ...insecure }),
    );
    expect(info).toEqual({ sub: ALICE.sub });
  });
});

describe("confidential agent: client_credentials with DPoP, accepted by the resource-server kit", () => {
  it("gets a DPoP-bound token for the MCP resource that the kit accepts with a proof and refuses as Bearer", async () => {
    const registered = await createClient(server, { grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
    const client: oauth.Client = { client_id: registered.client_id };
    const auth = oauth.ClientSecretBasic(registered.client_secret as string);
    const dpop = oauth.DPoP(client, await oauth.generateKeyPair("EdDSA"));
    const { result: tokens, nonceErrors } = await withNonceRetry(
      () => oauth.clientCredentialsGrantRequest(as, client, auth, { resource: MCP_RESOURCE, scope: "mcp:read" }, { DPoP: dpop, ...insecure }),
      (r) => oauth.processClientCredentialsResponse(as, client, r),
    );
    expect(nonceErrors).toBe(1);
    expect(tokens.token_type).toBe("dpop");
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: MCP_RESOURCE, cnf: { jkt: await dpop.calculateThumbprint() } });

    // The kit, verifying against the running server's JWKS, in front of a stand-in MCP endpoint.
    const { Hono } = await import("hono");
    const rs = new Hono<{ Variables: TokenVariables }>();
    const seen = new Set<string>();
    const claimProof = async (id: string) => !seen.has(id) && Boolean(seen.add(id));
    rs.use(
      "/mcp",
      requireAccessToken({ verify: createTokenVerifier({ issuer: server.issuer, resource: MCP_RESOURCE }), resource: MCP_RESOURCE, dpop: { claimProof } }),
    );
    rs.post("/mcp", (c) => c.json({ sub: c.var.accessToken.sub }));
    const rsFetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => rs.fetch(new Request(input, init))) as typeof fetch;

    const call = (options: oauth.ProtectedResourceRequestOptions) =>
      oauth.protectedResourceRequest(tokens.access_token, "POST", new URL(MCP_RESOURCE), new Headers({ "content-type": "application/json" }), "{}", {
        ...insecure,
        [oauth.customFetch]: rsFetch,
        ...options,
      });
    const ok = await call({ DPoP: dpop });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ sub: registered.client_id });
    expect(seen.size).toBe(1);

    // Without the handle oauth4webapi sends it as Bearer; the kit's 401 challenge surfaces as an error.
    const error = await thrown(call({}));
    expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenges = (error as oauth.WWWAuthenticateChallengeError).cause;
    expect(challenges.map((ch) => ch.scheme)).toEqual(["bearer", "dpop"]);
    expect(challenges[0]?.parameters).toMatchObject({
      error: "invalid_token",
      error_description: "the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof",
    });
    expect(challenges[1]?.parameters).toMatchObject({ algs: ALGS.join(" ") });
    expect((error as oauth.WWWAuthenticateChallengeError).response.status).toBe(401);
  });
});
