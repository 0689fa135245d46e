/**
 * Pushed client registration (draft-richer-oauth-pushed-client-registration-00) as an MCP client with
 * no registration would use it, driven by oauth4webapi through headless Chromium: push with the static
 * client_id and a `client_registration`, consent on a page that says the client is unregistered and
 * self-named, tokens and a refresh for the same static client_id.
 */
import { decodeJwt } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALICE,
  type AuthorizationServer,
  type CallbackServer,
  consent,
  landedAt,
  launchBrowser,
  MCP_RESOURCE,
  signIn,
  startCallbackServer,
  startServer,
  stopAll,
  type TestBrowser,
} from "./harness";
import { discover, insecure } from "./oauth4webapi-setup";

const DYNAMIC = "urn:ietf:oauth:parameters:dynamic";
const client: oauth.Client = { client_id: DYNAMIC, token_endpoint_auth_method: "none" };

let server: AuthorizationServer;
let callback: CallbackServer;
let browser: TestBrowser;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  [server, callback, browser] = await Promise.all([startServer(), startCallbackServer(), launchBrowser()]);
  as = await discover(server, "oauth2");
});

afterAll(() => stopAll(server, browser, callback));

async function push(registration: Record<string, unknown>) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const response = await oauth.pushedAuthorizationRequest(
    as,
    client,
    oauth.None(),
    {
      response_type: "code",
      redirect_uri: callback.redirectUri,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      scope: "mcp:read",
      resource: MCP_RESOURCE,
      client_registration: JSON.stringify(registration),
    },
    insecure,
  );
  const { request_uri } = await oauth.processPushedAuthorizationResponse(as, client, response);
  return { request_uri, verifier, state };
}

describe("pushed client registration", () => {
  it("is advertised (draft §5)", () => {
    expect(as.pushed_client_registration_supported).toBe(true);
    expect(as.pushed_authorization_request_endpoint).toBe(`${server.issuer}/par`);
  });

  it("takes an unregistered client from push to consent to tokens, and refreshes them", async () => {
    const pushed = await push({ client_name: "Desktop Agent", logo_uri: "https://agent.example/logo.png" });
    const page = await browser.newPage();
    const url = new URL(as.authorization_endpoint as string);
    url.search = new URLSearchParams({ client_id: DYNAMIC, request_uri: pushed.request_uri }).toString();
    expect((await page.goto(url.href))?.status()).toBe(200);
    // biome-ignore lint/performance/useDomNodeTextContent: a Playwright locator; rendered text keeps paragraphs apart
    expect(await page.locator("main").innerText()).toContain("to continue to an unregistered application that calls itself “Desktop Agent”");
    await signIn(page, ALICE);
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Allow an unregistered application to access your account?");
    const shown = await consent(page, "Allow");
    expect(shown).toContain("This application is not registered with this server. It calls itself “Desktop Agent”, but anyone can use any name");
    expect(shown).toContain("If you allow it, you will be sent to 127.0.0.1:");
    expect(shown).toContain("mcp:read");
    expect(await page.locator("img").count()).toBe(0);

    const params = oauth.validateAuthResponse(as, client, await landedAt(page, callback), pushed.state);
    const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, callback.redirectUri, pushed.verifier, insecure);
    expect(response.status).toBe(200);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
    expect(tokens).toMatchObject({ token_type: "bearer", scope: "mcp:read", refresh_token: expect.any(String) });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: DYNAMIC, aud: MCP_RESOURCE, sub: ALICE.sub, scope: "mcp:read" });

    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token as string, insecure),
    );
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(decodeJwt(refreshed.access_token)).toMatchObject({ client_id: DYNAMIC, scope: "mcp:read" });
  });

  it("asks again next time: consent to one unregistered client is not consent to the next", async () => {
    const pushed = await push({ client_name: "Desktop Agent" });
    const page = await browser.newPage();
    const url = new URL(as.authorization_endpoint as string);
    url.search = new URLSearchParams({ client_id: DYNAMIC, request_uri: pushed.request_uri }).toString();
    await page.goto(url.href);
    await signIn(page, ALICE);
    // The consent page is shown again (consent() waits for its buttons), here to be refused.
    await consent(page, "Deny");
    const landed = await landedAt(page, callback);
    const error = (() => {
      try {
        oauth.validateAuthResponse(as, client, landed, pushed.state);
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(oauth.AuthorizationResponseError);
    expect((error as oauth.AuthorizationResponseError).error).toBe("access_denied");
  });

  it("must start at PAR: the static client_id alone at the authorization endpoint is an error page", async () => {
    const page = await browser.newPage();
    const url = new URL(as.authorization_endpoint as string);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: DYNAMIC,
      redirect_uri: callback.redirectUri,
      state: "s",
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
      code_challenge_method: "S256",
    }).toString();
    expect((await page.goto(url.href))?.status()).toBe(400);
    expect(await page.getByRole("alert").textContent()).toBe("an unregistered client must start with a pushed authorization request (request_uri)");
  });
});
