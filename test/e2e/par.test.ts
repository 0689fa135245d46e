/**
 * Pushed authorization requests (RFC 9126) driven by oauth4webapi's PAR support
 * (`pushedAuthorizationRequest` + `processPushedAuthorizationResponse`) through the real sign-in and
 * consent pages in headless Chromium: a confidential and a public client, one-time use with a reload
 * tolerated, and a client that must push.
 */
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
  signIn,
  startCallbackServer,
  startServer,
  stopAll,
  type TestBrowser,
} from "./harness";
import { type ConfidentialClient, discover, insecure, registerConfidential } from "./oauth4webapi-setup";

let server: AuthorizationServer;
let callback: CallbackServer;
let browser: TestBrowser;
let as: oauth.AuthorizationServer;
let confidential: ConfidentialClient;

beforeAll(async () => {
  [server, callback, browser] = await Promise.all([startServer(), startCallbackServer(), launchBrowser()]);
  as = await discover(server);
  confidential = await registerConfidential(server, {
    client_name: "PAR confidential",
    redirect_uris: [callback.redirectUri],
    grant_types: ["authorization_code", "refresh_token"],
    require_pushed_authorization_requests: true,
  });
});

afterAll(() => stopAll(server, browser, callback));

/** Pushes an authorization request (code + PKCE S256, fresh state) and returns what the client keeps. */
async function push(client: oauth.Client, auth: oauth.ClientAuth, params: Record<string, string>) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const response = await oauth.pushedAuthorizationRequest(
    as,
    client,
    auth,
    {
      response_type: "code",
      redirect_uri: callback.redirectUri,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      ...params,
    },
    insecure,
  );
  expect(response.status).toBe(201);
  expect(response.headers.get("cache-control")).toBe("no-store");
  const { request_uri, expires_in } = await oauth.processPushedAuthorizationResponse(as, client, response);
  return { request_uri, expires_in, verifier, state };
}

/** RFC 9126 §4: the authorization request carries only client_id and request_uri. */
function authorizationUrl(clientId: string, requestUri: string): string {
  const url = new URL(as.authorization_endpoint as string);
  url.search = new URLSearchParams({ client_id: clientId, request_uri: requestUri }).toString();
  return url.href;
}

async function errorText(page: Page): Promise<string> {
  return (await page.getByRole("alert").textContent()) ?? "";
}

describe("discovery", () => {
  it("names the PAR endpoint (RFC 9126 §5)", () => {
    expect(as).toMatchObject({
      pushed_authorization_request_endpoint: `${server.issuer}/par`,
      require_pushed_authorization_requests: false,
      pushed_client_registration_supported: true,
    });
  });
});

describe("a confidential client that must push (client_secret_basic)", () => {
  it("pushes, sends the browser with request_uri, signs in, consents and redeems the code", async () => {
    const nonce = oauth.generateRandomNonce();
    const pushed = await push(confidential.client, confidential.auth, { scope: "openid offline_access", nonce });
    expect(pushed.request_uri).toMatch(/^urn:ietf:params:oauth:request_uri:lkp_/);
    expect(pushed.expires_in).toBe(60);

    const page = await browser.newPage();
    expect((await page.goto(authorizationUrl(confidential.registered.client_id, pushed.request_uri)))?.status()).toBe(200);
    // A reload of the sign-in page is the same browser coming back: tolerated.
    expect((await page.reload())?.status()).toBe(200);
    await signIn(page, ALICE);
    const shown = await consent(page, "Allow");
    expect(shown).toContain("PAR confidential");
    expect(shown).toMatch(/openid\s+offline_access/);
    const landed = await landedAt(page, callback);

    const params = oauth.validateAuthResponse(as, confidential.client, landed, pushed.state);
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      confidential.client,
      confidential.auth,
      params,
      callback.redirectUri,
      pushed.verifier,
      insecure,
    );
    expect(response.status).toBe(200);
    const tokens = await oauth.processAuthorizationCodeResponse(as, confidential.client, response, { expectedNonce: nonce, requireIdToken: true });
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ sub: ALICE.sub, aud: confidential.registered.client_id, nonce });
    expect(tokens.refresh_token).toEqual(expect.any(String));

    // One-time use: the same request_uri, even in the same browser, now gets an error page.
    const again = await page.goto(authorizationUrl(confidential.registered.client_id, pushed.request_uri));
    expect(again?.status()).toBe(400);
    expect(await errorText(page)).toBe("the request_uri is unknown, expired or already used; start again from the application");
  });

  it("is refused a plain authorization request, at its redirect URI", async () => {
    const page = await browser.newPage();
    const url = new URL(as.authorization_endpoint as string);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: confidential.registered.client_id,
      redirect_uri: callback.redirectUri,
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
      code_challenge_method: "S256",
      state: "plain",
    }).toString();
    await page.goto(url.href);
    const landed = await landedAt(page, callback);
    const error = (() => {
      try {
        oauth.validateAuthResponse(as, confidential.client, landed, "plain");
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(oauth.AuthorizationResponseError);
    expect((error as oauth.AuthorizationResponseError).error).toBe("invalid_request");
    expect((error as oauth.AuthorizationResponseError).error_description).toBe("this client must use pushed authorization requests (RFC 9126)");
  });

  it("gets the authorization endpoint's errors from the push, as JSON", async () => {
    const response = await oauth.pushedAuthorizationRequest(
      as,
      confidential.client,
      confidential.auth,
      { response_type: "code", redirect_uri: callback.redirectUri, state: "s" },
      insecure,
    );
    const error = await oauth.processPushedAuthorizationResponse(as, confidential.client, response).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    const { status, error: code, error_description } = error as oauth.ResponseBodyError;
    expect({ status, code, error_description }).toEqual({
      status: 400,
      code: "invalid_request",
      error_description: "code_challenge is required (PKCE with S256)",
    });
  });
});

describe("a public client (none)", () => {
  it("pushes with its client_id alone; a second browser cannot use the request_uri the first opened", async () => {
    const registered = await createClient(server, {
      client_name: "PAR public",
      redirect_uris: [callback.redirectUri],
      token_endpoint_auth_method: "none",
      application_type: "native",
    });
    const client: oauth.Client = { client_id: registered.client_id, token_endpoint_auth_method: "none" };
    const pushed = await push(client, oauth.None(), { scope: "mcp:read", resource: MCP_RESOURCE });
    const page = await browser.newPage();
    await page.goto(authorizationUrl(registered.client_id, pushed.request_uri));

    const intruder = await browser.newPage();
    expect((await intruder.goto(authorizationUrl(registered.client_id, pushed.request_uri)))?.status()).toBe(400);
    expect(await errorText(intruder)).toBe("the request_uri is unknown, expired or already used; start again from the application");

    await signIn(page, ALICE);
    expect(await consent(page, "Allow")).toContain(`Example MCP server ${MCP_RESOURCE}`);
    const params = oauth.validateAuthResponse(as, client, await landedAt(page, callback), pushed.state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, callback.redirectUri, pushed.verifier, {
        ...insecure,
        additionalParameters: { resource: MCP_RESOURCE },
      }),
    );
    expect(tokens).toMatchObject({ token_type: "bearer", scope: "mcp:read" });
  });
});
