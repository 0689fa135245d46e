import { env } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { DYNAMIC_CLIENT_ID } from "../../schemas/client";
import { authorizeUrl, Browser, clientRedirect, decide, follow, hidden, type PkcePair, pkce, signIn } from "./browser";
import { basic, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm, type Send, withVars } from "./helpers";

/**
 * Pushed client registration (draft-richer-oauth-pushed-client-registration-00): an unregistered
 * client pushes its request, with what it says about itself, under the static client_id.
 */

const REDIRECT = "https://agent.example/cb";

function fields(p: PkcePair, extra: Record<string, string | undefined> = {}): Record<string, string> {
  const all: Record<string, string | undefined> = {
    client_id: DYNAMIC_CLIENT_ID,
    response_type: "code",
    redirect_uri: REDIRECT,
    state: "random-4789",
    code_challenge: p.challenge,
    code_challenge_method: "S256",
    scope: "mcp:read",
    resource: MCP_RESOURCE,
    client_registration: JSON.stringify({ client_name: "ClaudeDesktop", logo_uri: "https://agent.example/logo.png" }),
    ...extra,
  };
  return Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => e[1] !== undefined));
}

async function push(extra: Record<string, string | undefined> = {}, send: Send = call) {
  const p = await pkce();
  const res = await postForm("/par", fields(p, extra), {}, send);
  return { res, pkce: p };
}

async function pushed(extra: Record<string, string | undefined> = {}) {
  const { res, pkce: p } = await push(extra);
  expect(res.status).toBe(201);
  return { request_uri: ((await res.json()) as { request_uri: string }).request_uri, pkce: p };
}

function redeem(code: string, verifier: string) {
  return postForm("/token", { grant_type: "authorization_code", client_id: DYNAMIC_CLIENT_ID, code, code_verifier: verifier });
}

describe("pushed client registration: the whole flow", () => {
  it("starts at PAR, shows an unregistered, self-named client, and issues tokens to the static client_id", async () => {
    const { request_uri, pkce: p } = await pushed();
    const browser = new Browser();
    const login = await browser.get(authorizeUrl({ client_id: DYNAMIC_CLIENT_ID, request_uri }));
    expect(await login.clone().text()).toContain("to continue to an unregistered application that calls itself <strong>“ClaudeDesktop”</strong>");
    const consent = await follow(browser, await signIn(browser, login));
    const html = await consent.clone().text();
    expect(html).toContain("<h1>Allow an unregistered application to access your account?</h1>");
    expect(html).toContain("<strong>This application is not registered with this server.</strong> It calls itself <strong>“ClaudeDesktop”</strong>");
    expect(html).toContain("If you allow it, you will be sent to <strong>agent.example</strong>.");
    // The pushed logo is never shown (nor fetched): it is as unverified as the name.
    expect(html).not.toContain("logo.png");
    expect(consent.headers.get("content-security-policy")).toContain("form-action 'self' https://agent.example");

    const q = clientRedirect(await decide(browser, consent, "allow"), REDIRECT);
    expect(q.get("state")).toBe("random-4789");
    // The code is bound to the pushed PKCE challenge: only the pusher's verifier redeems it.
    await expectError(await redeem(q.get("code") as string, (await pkce()).verifier), 400, "invalid_grant", "code_verifier does not match the code_challenge");
    const res = await redeem(q.get("code") as string, p.verifier);
    expect(res.status).toBe(200);
    const tokens = (await res.json()) as { access_token: string; refresh_token: string; scope: string };
    expect(tokens).toMatchObject({ token_type: "Bearer", scope: "mcp:read", refresh_token: expect.stringMatching(/^lkr_/) });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: DYNAMIC_CLIENT_ID, aud: MCP_RESOURCE, sub: "usr_dev_alice", scope: "mcp:read" });

    // Draft §3.4: the refresh token gets the same rights again, with the same static client_id.
    const refreshed = await postForm("/token", { grant_type: "refresh_token", client_id: DYNAMIC_CLIENT_ID, refresh_token: tokens.refresh_token });
    expect(refreshed.status).toBe(200);
    expect(await refreshed.json()).toMatchObject({ scope: "mcp:read", refresh_token: expect.stringMatching(/^lkr_/) });
    // A code is single-use, for this client as for any.
    await expectError(await redeem(q.get("code") as string, p.verifier), 400, "invalid_grant", "the authorization code is invalid, expired or already used");
  });

  it("never remembers consent: every unregistered client shares the client_id", async () => {
    const first = await pushed();
    const browser = new Browser();
    const consent = await follow(
      browser,
      await signIn(browser, await browser.get(authorizeUrl({ client_id: DYNAMIC_CLIENT_ID, request_uri: first.request_uri }))),
    );
    expect(clientRedirect(await decide(browser, consent, "allow"), REDIRECT).get("code")).toBeTruthy();
    const registry = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
    expect(await registry.getConsent("usr_dev_alice", DYNAMIC_CLIENT_ID, MCP_RESOURCE)).toEqual([]);

    const second = await pushed();
    const again = await browser.get(authorizeUrl({ client_id: DYNAMIC_CLIENT_ID, request_uri: second.request_uri }));
    expect(again.status).toBe(200);
    expect(await again.text()).toContain("Allow an unregistered application");
    const silent = await pushed({ prompt: "none" });
    const q = clientRedirect(await browser.get(authorizeUrl({ client_id: DYNAMIC_CLIENT_ID, request_uri: silent.request_uri })), REDIRECT);
    expect(Object.fromEntries(q)).toEqual({
      error: "consent_required",
      error_description: "the user has not allowed this access",
      state: "random-4789",
      iss: ISSUER,
    });
  });

  it("names an unnamed client as such", async () => {
    const { request_uri } = await pushed({ client_registration: undefined });
    const html = await (await new Browser().get(authorizeUrl({ client_id: DYNAMIC_CLIENT_ID, request_uri }))).text();
    expect(html).toContain("calls itself <strong>“an unnamed application”</strong>");
  });

  it("a private-use scheme redirect is named by its scheme on the consent page", async () => {
    const { request_uri } = await pushed({ redirect_uri: "com.example.agent:/cb", client_registration: undefined, prompt: "consent" });
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl({ client_id: DYNAMIC_CLIENT_ID, request_uri }))));
    expect(await consent.text()).toContain("you will be sent to <strong>com.example.agent</strong>");
  });
});

describe("pushed client registration: what is refused", () => {
  it("at the authorization endpoint without a pushed request, with a page", async () => {
    const p = await pkce();
    const res = await new Browser().get(authorizeUrl(fields(p)));
    expect(res.status).toBe(400);
    expect(res.headers.get("location")).toBeNull();
    expect(await res.text()).toContain("an unregistered client must start with a pushed authorization request (request_uri)");
  });

  const cases: Array<[string, Record<string, string | undefined>, string, string]> = [
    ["no state", { state: undefined }, "invalid_request", "state is required for an unregistered client (pushed client registration)"],
    ["no redirect_uri", { redirect_uri: undefined }, "invalid_request", "redirect_uri is required for an unregistered client (pushed client registration)"],
    ["an http redirect_uri", { redirect_uri: "http://agent.example/cb" }, "invalid_request", "redirect_uri must use https (http is allowed only for loopback)"],
    ["a redirect_uri with a fragment", { redirect_uri: "https://agent.example/cb#x" }, "invalid_request", "redirect_uri must not contain a fragment"],
    ["no PKCE", { code_challenge: undefined }, "invalid_request", "code_challenge is required (PKCE with S256)"],
    ["client_registration that is not JSON", { client_registration: "{" }, "invalid_client_metadata", "client_registration is not valid JSON"],
    ["client_registration that is not an object", { client_registration: "[]" }, "invalid_client_metadata", "client_registration must be a JSON object"],
    [
      "a client_name too long",
      { client_registration: JSON.stringify({ client_name: "x".repeat(201) }) },
      "invalid_client_metadata",
      "client_registration.client_name: Invalid length: Expected <=200 but received 201",
    ],
    [
      "a confidential authentication method",
      { client_registration: JSON.stringify({ token_endpoint_auth_method: "client_secret_basic" }) },
      "invalid_client_metadata",
      "client_registration.token_endpoint_auth_method: an unregistered client is a public client (none)",
    ],
    [
      "a redirect_uri outside the pushed redirect_uris",
      { client_registration: JSON.stringify({ redirect_uris: ["https://agent.example/other"] }) },
      "invalid_request",
      "redirect_uri is not one of the client_registration's redirect_uris",
    ],
    [
      "a software statement",
      { client_registration: JSON.stringify({ software_statement: "eyJ.x.y" }) },
      "invalid_software_statement",
      "software statements are not supported by this server",
    ],
    [
      "a client_registration over 16 KB",
      { client_registration: JSON.stringify({ x: "y".repeat(17_000) }) },
      "invalid_client_metadata",
      "client_registration is too large",
    ],
  ];
  for (const [name, change, error, description] of cases) {
    it(`refuses ${name} at PAR`, async () => {
      const { res } = await push(change);
      await expectError(res, 400, error, description);
    });
  }

  it("refuses client authentication: the unregistered client is public", async () => {
    const p = await pkce();
    await expectError(await postForm("/par", { ...fields(p), client_secret: "s" }), 401, "invalid_client", "client authentication failed");
    const { client_id: _id, ...rest } = fields(p);
    await expectError(await postForm("/par", rest, { Authorization: basic(DYNAMIC_CLIENT_ID, "s") }), 401, "invalid_client", "client authentication failed");
  });

  it("refuses the client credentials grant", async () => {
    await expectError(
      await postForm("/token", { grant_type: "client_credentials", client_id: DYNAMIC_CLIENT_ID }),
      400,
      "unauthorized_client",
      "this client is not registered for the client_credentials grant",
    );
  });

  it("can be switched off: then the static client_id is unknown and the metadata says so", async () => {
    const send = withVars({ PUSHED_CLIENT_REGISTRATION: "false" });
    const metadata = (await (await send("/.well-known/oauth-authorization-server")).json()) as Record<string, unknown>;
    expect(metadata.pushed_client_registration_supported).toBe(false);
    await expectError((await push({}, send)).res, 401, "invalid_client", "client authentication failed");
  });

  it("never assigns the static client_id to a registered client", async () => {
    const registry = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
    const client = await createClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" });
    const stored = await registry.getClient(client.client_id);
    expect(await registry.createClient({ ...(stored as NonNullable<typeof stored>), client_id: DYNAMIC_CLIENT_ID })).toEqual({ ok: false, reason: "reserved" });
    expect(await registry.getClient(DYNAMIC_CLIENT_ID)).toBeNull();
  });

  it("keeps the pushed metadata out of reach of tampering: the interaction is signed", async () => {
    const { request_uri } = await pushed({ prompt: "consent" });
    const browser = new Browser();
    const html = await (await browser.get(authorizeUrl({ client_id: DYNAMIC_CLIENT_ID, request_uri }))).text();
    const res = await browser.post("/login", {
      email: "alice@example.com",
      password: "alice-dev-password",
      interaction: `${hidden(html, "interaction")}x`,
      csrf: hidden(html, "csrf"),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("this sign-in has expired or is invalid");
  });
});
