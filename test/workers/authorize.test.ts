import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../workers/app";
import { authorizeUrl, Browser, clientRedirect, decide, follow, hidden, obtainCode, pkce, signIn } from "./browser";
import { type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE } from "./helpers";

const REDIRECT = "https://app.example/callback";
let app: CreatedClient;
let native: CreatedClient;
let challenge: string;

beforeAll(async () => {
  app = await createClient({
    client_name: "Example App",
    client_uri: "https://app.example",
    redirect_uris: [REDIRECT, "https://app.example/other"],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
  native = await createClient({
    client_name: "CLI",
    redirect_uris: ["http://127.0.0.1/callback"],
    token_endpoint_auth_method: "none",
    application_type: "native",
  });
  challenge = (await pkce()).challenge;
});

const base = () => ({
  response_type: "code",
  client_id: app.client_id,
  redirect_uri: REDIRECT,
  code_challenge: challenge,
  code_challenge_method: "S256",
  state: "s-1",
  resource: MCP_RESOURCE,
  scope: "mcp:read",
});

async function expectErrorPage(res: Response, message: string): Promise<void> {
  expect(res.status).toBe(400);
  expect(res.headers.get("location")).toBeNull();
  expect(res.headers.get("content-type")).toMatch(/^text\/html/);
  expect(await res.text()).toContain(message);
}

describe("authorization endpoint: errors that must not redirect (RFC 9700 §4.1)", () => {
  it("shows a page for a missing client_id", async () => {
    await expectErrorPage(await new Browser().get(authorizeUrl({ ...base(), client_id: undefined })), "client_id is missing");
  });
  it("shows a page for an unknown client", async () => {
    await expectErrorPage(await new Browser().get(authorizeUrl({ ...base(), client_id: "nobody" })), "the client is not known to this server");
  });
  it("shows a page for an unregistered redirect_uri, even one differing only by a trailing slash", async () => {
    await expectErrorPage(await new Browser().get(authorizeUrl({ ...base(), redirect_uri: `${REDIRECT}/` })), "redirect_uri is not registered for this client");
    await expectErrorPage(
      await new Browser().get(authorizeUrl({ ...base(), redirect_uri: "https://evil.example/callback" })),
      "redirect_uri is not registered for this client",
    );
  });
  it("shows a page when redirect_uri is omitted and the client has several", async () => {
    await expectErrorPage(await new Browser().get(authorizeUrl({ ...base(), redirect_uri: undefined })), "redirect_uri is required for this client");
  });
  it("shows a page for a repeated parameter", async () => {
    await expectErrorPage(await new Browser().get(`${authorizeUrl(base())}&state=again`), "parameter state is repeated");
  });
  it("shows a page for an OpenID Connect request without redirect_uri, even when the client has one (OIDC Core §3.1.2.1)", async () => {
    const single = await createClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" });
    const params = { ...base(), client_id: single.client_id, redirect_uri: undefined };
    await expectErrorPage(
      await new Browser().get(authorizeUrl({ ...params, scope: "openid mcp:read" })),
      "redirect_uri is required in an OpenID Connect request (scope openid)",
    );
    // OAuth 2.1 §4.1.1 alone: the only registered one is used.
    const oauth = await new Browser().get(authorizeUrl(params));
    expect(oauth.status).toBe(200);
    expect(await oauth.text()).toContain('action="/login"');
  });
});

describe("authorization endpoint: errors redirected to the client with state and iss", () => {
  const cases: Array<[string, Record<string, string | undefined>, string, string]> = [
    ["missing response_type", { response_type: undefined }, "invalid_request", "response_type is required"],
    ["implicit grant", { response_type: "token" }, "unsupported_response_type", "only response_type=code is supported"],
    ["missing PKCE", { code_challenge: undefined }, "invalid_request", "code_challenge is required (PKCE with S256)"],
    ["plain PKCE", { code_challenge_method: "plain" }, "invalid_request", "code_challenge_method must be S256"],
    ["malformed challenge", { code_challenge: "short" }, "invalid_request", "code_challenge must be a base64url SHA-256 value (43 characters)"],
    [
      "unknown resource",
      { resource: "https://unknown.example/" },
      "invalid_target",
      "resource https://unknown.example/ is not known to this authorization server",
    ],
    [
      "resource with fragment",
      { resource: "https://app.example/#x" },
      "invalid_target",
      "resource 'https://app.example/#x' is not an absolute URI without a fragment",
    ],
    ["scope the resource lacks", { scope: "mcp:admin" }, "invalid_scope", "scope mcp:admin is not supported by the requested resource"],
    ["resource scope without resource", { resource: undefined }, "invalid_scope", "scope mcp:read needs a resource parameter naming the resource it is for"],
    ["request object", { request: "eyJ.x.y" }, "request_not_supported", "request objects are not supported"],
    ["request_uri", { request_uri: "urn:x" }, "request_uri_not_supported", "request_uri is not supported"],
    ["prompt none with login", { prompt: "none login" }, "invalid_request", "prompt=none cannot be combined with other values"],
    ["unknown prompt", { prompt: "create" }, "invalid_request", "prompt value create is not supported"],
    // RFC 6749 §4.1.2.1: error_description holds no '"', '\\' or non-ASCII, even echoing such a value.
    ["unknown prompt with characters a description may not hold", { prompt: '"\\é' }, "invalid_request", "prompt value '/? is not supported"],
    ["bad max_age", { max_age: "-1" }, "invalid_request", "max_age must be a non-negative integer"],
    ["fragment response mode", { response_mode: "fragment" }, "invalid_request", "only response_mode=query is supported"],
    ["prompt none without session", { prompt: "none" }, "login_required", "the user is not signed in"],
  ];
  for (const [name, change, error, description] of cases) {
    it(name, async () => {
      const res = await new Browser().get(authorizeUrl({ ...base(), ...change }));
      const q = clientRedirect(res, REDIRECT);
      expect(Object.fromEntries(q)).toEqual({ error, error_description: description, state: "s-1", iss: ISSUER });
    });
  }

  it("answers unauthorized_client for a client without the authorization_code grant", async () => {
    const m2m = await createClient({ grant_types: ["client_credentials"], redirect_uris: [REDIRECT], token_endpoint_auth_method: "client_secret_basic" });
    const q = clientRedirect(await new Browser().get(authorizeUrl({ ...base(), client_id: m2m.client_id })), REDIRECT);
    expect(q.get("error")).toBe("unauthorized_client");
  });
});

describe("authorization endpoint: a self-registered client's errors before anyone signs in (RFC 9700 §4.11.2)", () => {
  const PHISH = "https://phish.example/callback";
  let self: CreatedClient;
  beforeAll(async () => {
    const res = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_name: "Self", redirect_uris: [PHISH], token_endpoint_auth_method: "none" }),
    });
    expect(res.status).toBe(201);
    self = await res.json();
  });
  const params = (change: Record<string, string | undefined>) => ({ ...base(), client_id: self.client_id, redirect_uri: PHISH, ...change });

  const cases: Array<[string, Record<string, string | undefined>, string, string]> = [
    ["unknown response_type", { response_type: "bogus" }, "unsupported_response_type", "only response_type=code is supported"],
    ["unknown scope", { scope: "nope", resource: undefined }, "invalid_scope", "scope nope needs a resource parameter naming the resource it is for"],
    ["prompt=none", { prompt: "none" }, "login_required", "the user is not signed in"],
  ];
  for (const [name, change, error, description] of cases) {
    it(`${name}: shown here with its code and the client's host, not redirected`, async () => {
      const res = await new Browser().get(authorizeUrl(params(change)));
      expect(res.status).toBe(400);
      expect(res.headers.get("location")).toBeNull();
      const html = await res.text();
      expect(html).toContain(`<p role="alert">${description}</p>`);
      expect(html).toContain(`<code>${error}</code>`);
      expect(html).toContain('returns to <strong class="host">phish.example</strong>');
    });
  }

  it("redirects the error once the user is signed in", async () => {
    const browser = new Browser();
    const bogus = authorizeUrl(params({ response_type: "bogus" }));
    expect((await browser.get(bogus)).status).toBe(400);
    expect((await signIn(browser, await browser.get(authorizeUrl(params({}))))).status).toBe(303);
    const q = clientRedirect(await browser.get(bogus), PHISH);
    expect(Object.fromEntries(q)).toEqual({
      error: "unsupported_response_type",
      error_description: "only response_type=code is supported",
      state: "s-1",
      iss: ISSUER,
    });
  });
});

describe("authorization endpoint: an unexpected failure", () => {
  it("is server_error, not a redirect without code or error", async () => {
    // KV failing for resource lookups: the scope and resource policy throws something that is no OAuthError.
    const failing = {
      ...env,
      CLIENT_CACHE: {
        get: (key: string, options: unknown) =>
          key.startsWith("resource-uri:") ? Promise.reject(new Error("KV is down")) : env.CLIENT_CACHE.get(key, options as KVNamespaceGetOptions<"json">),
      },
    } as unknown as Env;
    const ctx = createExecutionContext();
    const res = await buildApp().fetch(new Request(new URL(authorizeUrl({ ...base(), resource: "https://kv-down.example/api" }), ISSUER)), failing, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.headers.get("location")).toBeNull();
    await expectError(res, 500, "server_error", "the server could not complete the request");
  });
});

describe("sign-in, consent and the code", () => {
  it("names a client's origin from the client_uri only when an administrator registered it; else where the answer goes", async () => {
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        client_name: "GitHub",
        client_uri: "https://github.com",
        redirect_uris: ["https://evil.example/cb"],
        token_endpoint_auth_method: "none",
      }),
    });
    const posing = (await registered.json()) as { client_id: string };
    const consentOf = async (clientId: string, redirectUri: string) => {
      const browser = new Browser();
      const params = { ...base(), client_id: clientId, redirect_uri: redirectUri };
      return (await follow(browser, await signIn(browser, await browser.get(authorizeUrl(params))))).text();
    };
    const self = await consentOf(posing.client_id, "https://evil.example/cb");
    expect(self).not.toContain("github.com");
    expect(self).toContain('If you allow it, you will be sent to <strong class="host">evil.example</strong>.');
    const vouched = await consentOf(app.client_id, REDIRECT);
    expect(vouched).toContain("This application is from <strong>app.example</strong>.");
    expect(vouched).not.toContain("you will be sent to");
  });

  it("asks a self-registered client's user again for another of its redirect hosts: consent is remembered for the host it showed", async () => {
    const [shown, other] = ["https://lookalike.example/cb", "https://elsewhere.example/cb"];
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_name: "Two hosts", redirect_uris: [shown, other], token_endpoint_auth_method: "none" }),
    });
    const self = (await registered.json()) as { client_id: string };
    const params = (redirect_uri: string) => ({ ...base(), client_id: self.client_id, redirect_uri });
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl(params(shown)))));
    expect(clientRedirect(await decide(browser, consent, "allow"), shown).get("code")).toBeTruthy();
    // The same host again: remembered. Another host: the consent page, which names it.
    expect(clientRedirect(await browser.get(authorizeUrl(params(shown))), shown).get("code")).toBeTruthy();
    const again = await browser.get(authorizeUrl(params(other)));
    expect(again.status).toBe(200);
    expect(await again.text()).toContain('you will be sent to <strong class="host">elsewhere.example</strong>');
  });

  it("takes a POST as the same request made again as a GET, which carries the session cookie (SameSite=Lax)", async () => {
    const form = new URLSearchParams(base() as Record<string, string>);
    const init = { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: form.toString(), redirect: "manual" as const };
    const res = await call("/authorize", init);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/authorize?${form}`);
  });

  it("sets the CSRF cookie SameSite=Lax, so arriving from a client's site keeps it and other tabs' forms work", async () => {
    const page = await new Browser().get(authorizeUrl(base()));
    const cookies = page.headers.getSetCookie().filter((c) => c.startsWith("lk_csrf="));
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toContain("SameSite=Lax");
  });

  it("goes through sign-in and consent and returns code, state and iss", async () => {
    const browser = new Browser();
    const loginPage = await browser.get(authorizeUrl(base()));
    expect(loginPage.status).toBe(200);
    const csp = loginPage.headers.get("content-security-policy") as string;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("form-action 'self' https://app.example");
    expect(loginPage.headers.get("x-frame-options")).toBe("DENY");
    expect(loginPage.headers.get("cache-control")).toBe("no-store");
    const html = await loginPage.clone().text();
    expect(html).toContain('<label for="email">Email</label>');
    expect(html).toContain('<label for="password">Password</label>');
    expect(html).toContain(">Sign in</button>");

    const bad = await browser.post("/login", {
      email: "alice@example.com",
      password: "wrong-password",
      interaction: hidden(html, "interaction"),
      csrf: hidden(html, "csrf"),
    });
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain('role="alert"');

    const consent = await follow(browser, await signIn(browser, loginPage));
    expect(consent.status).toBe(200);
    const consentHtml = await consent.clone().text();
    expect(consentHtml).toContain("Example App");
    expect(consentHtml).toContain("app.example");
    expect(consentHtml).toContain("mcp:read");
    expect(consentHtml).toContain("Example MCP server");
    expect(consentHtml).toContain(MCP_RESOURCE);
    expect(consentHtml).toContain("alice@example.com");

    const q = clientRedirect(await decide(browser, consent, "allow"), REDIRECT);
    expect(q.get("code")).toMatch(/^lkc_[0-9a-f]{64}_[A-Za-z0-9_-]{43}$/);
    expect(q.get("state")).toBe("s-1");
    expect(q.get("iss")).toBe(ISSUER);
  });

  it("sets an HttpOnly, SameSite session cookie (not Secure on http://localhost)", async () => {
    const browser = new Browser();
    const page = await browser.get(authorizeUrl(base()));
    const res = await signIn(browser, page);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith("lk_session=")) as string;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).not.toMatch(/Secure/);
  });

  it("answers access_denied when the user denies", async () => {
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl({ ...base(), prompt: "consent" }))));
    const q = clientRedirect(await decide(browser, consent, "deny"), REDIRECT);
    expect(Object.fromEntries(q)).toEqual({ error: "access_denied", error_description: "the user denied the request", state: "s-1", iss: ISSUER });
  });

  it("remembers consent per user, client and resource; asks again for a new scope or prompt=consent", async () => {
    const { browser } = await obtainCode(base(), REDIRECT);
    // Same scopes: straight back to the client.
    const again = await browser.get(authorizeUrl(base()));
    expect(clientRedirect(again, REDIRECT).get("code")).toBeTruthy();
    // prompt=none works now too.
    expect(clientRedirect(await browser.get(authorizeUrl({ ...base(), prompt: "none" })), REDIRECT).get("code")).toBeTruthy();
    // A wider scope needs consent; with prompt=none that is consent_required.
    const wider = await browser.get(authorizeUrl({ ...base(), scope: "mcp:read mcp:write" }));
    expect(wider.status).toBe(200);
    expect(await wider.text()).toContain("mcp:write");
    expect(clientRedirect(await browser.get(authorizeUrl({ ...base(), scope: "mcp:write", prompt: "none" })), REDIRECT).get("error")).toBe("consent_required");
    // prompt=consent always asks.
    const forced = await browser.get(authorizeUrl({ ...base(), prompt: "consent" }));
    expect(forced.status).toBe(200);
    expect(await forced.text()).toContain(">Allow</button>");
  });

  it("prompt=login and max_age=0 ask the signed-in user to sign in again", async () => {
    const { browser } = await obtainCode(base(), REDIRECT);
    for (const extra of [{ prompt: "login" }, { max_age: "0" }]) {
      const page = await browser.get(authorizeUrl({ ...base(), ...extra }));
      expect(page.status).toBe(200);
      expect(await page.clone().text()).toContain('action="/login"');
      // Signing in again satisfies it (consent is remembered), and the code follows.
      const after = await follow(browser, await signIn(browser, page));
      if (extra.max_age) {
        // max_age=0 means the sign-in must be this very second; it was.
        expect(after.status).toBe(303);
      }
      expect(clientRedirect(after, REDIRECT).get("code")).toBeTruthy();
    }
  });

  it("refuses a form post with a missing or foreign CSRF token", async () => {
    const browser = new Browser();
    const html = await (await browser.get(authorizeUrl(base()))).text();
    const res = await browser.post("/login", {
      email: "alice@example.com",
      password: "alice-dev-password",
      interaction: hidden(html, "interaction"),
      csrf: "forged",
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("the form has expired");
    const other = new Browser();
    const stolen = await other.post("/login", {
      email: "alice@example.com",
      password: "alice-dev-password",
      interaction: hidden(html, "interaction"),
      csrf: hidden(html, "csrf"),
    });
    expect(stolen.status).toBe(400);
  });

  it("refuses a tampered interaction", async () => {
    const browser = new Browser();
    const html = await (await browser.get(authorizeUrl(base()))).text();
    const interaction = hidden(html, "interaction");
    const res = await browser.post("/login", {
      email: "alice@example.com",
      password: "alice-dev-password",
      interaction: `${interaction}x`,
      csrf: hidden(html, "csrf"),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("this sign-in has expired or is invalid");
  });

  it("remembers a self-registered native client's consent across loopback ports, which change from run to run", async () => {
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_name: "CLI", redirect_uris: ["http://127.0.0.1/callback"], token_endpoint_auth_method: "none" }),
    });
    const cli = (await registered.json()) as { client_id: string };
    const params = {
      response_type: "code",
      client_id: cli.client_id,
      code_challenge: challenge,
      code_challenge_method: "S256",
      resource: MCP_RESOURCE,
      scope: "mcp:read",
    };
    const { browser } = await obtainCode({ ...params, redirect_uri: "http://127.0.0.1:5000/callback" }, "http://127.0.0.1:5000/callback");
    const again = await browser.get(authorizeUrl({ ...params, redirect_uri: "http://127.0.0.1:5001/callback" }));
    expect(clientRedirect(again, "http://127.0.0.1:5001/callback").get("code")).toBeTruthy();
  });

  it("names a client that registered itself on the sign-in page as its own claim, with where the answer goes", async () => {
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_name: "Example Bank", redirect_uris: ["https://phish.example/cb"], token_endpoint_auth_method: "none" }),
    });
    const { client_id } = (await registered.json()) as { client_id: string };
    const page = await new Browser().get(
      authorizeUrl({ response_type: "code", client_id, redirect_uri: "https://phish.example/cb", code_challenge: challenge, code_challenge_method: "S256" }),
    );
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(
      "to continue to an application that registered itself as <strong>“Example Bank”</strong>, whose answer goes to <strong>phish.example</strong>",
    );
  });

  it("keeps a registered query byte for byte and appends the response parameters (OAuth 2.1 §4.1.2)", async () => {
    const withQuery = "https://app.example/cb?next=/a:b&x=%2F";
    const client = await createClient({ redirect_uris: [withQuery], token_endpoint_auth_method: "none" });
    const params = {
      response_type: "code",
      client_id: client.client_id,
      redirect_uri: withQuery,
      code_challenge: challenge,
      code_challenge_method: "S256",
      state: "s",
    };
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl(params))));
    const res = await decide(browser, consent, "allow");
    expect(res.headers.get("location")).toMatch(/^https:\/\/app\.example\/cb\?next=\/a:b&x=%2F&code=[^&]+&state=s&iss=/);
  });

  it("sends the code in a redirect no cache may keep, and answers HEAD with 405 rather than running the flow", async () => {
    const { browser } = await obtainCode(base(), REDIRECT);
    const res = await browser.get(authorizeUrl(base()));
    expect(res.status).toBe(303);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const head = await call(authorizeUrl(base()), { method: "HEAD", headers: { Cookie: browser.cookieHeader }, redirect: "manual" });
    expect(head.status).toBe(405);
    expect(head.headers.get("allow")).toBe("GET, POST");
    expect(head.headers.get("location")).toBeNull();
  });

  it("lets a loopback redirect URI vary only its port (RFC 8252 §7.3)", async () => {
    const params = { response_type: "code", client_id: native.client_id, code_challenge: challenge, code_challenge_method: "S256" };
    const { query } = await obtainCode({ ...params, redirect_uri: "http://127.0.0.1:49152/callback" }, "http://127.0.0.1:49152/callback");
    expect(query.get("code")).toBeTruthy();
    await expectErrorPage(
      await new Browser().get(authorizeUrl({ ...params, redirect_uri: "http://127.0.0.1:49152/other" })),
      "redirect_uri is not registered for this client",
    );
    await expectErrorPage(
      await new Browser().get(authorizeUrl({ ...params, redirect_uri: "http://localhost:49152/callback" })),
      "redirect_uri is not registered for this client",
    );
  });
});
