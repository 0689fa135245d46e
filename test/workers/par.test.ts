import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { setClock } from "../../workers/clock";
import { authorizeUrl, Browser, clientRedirect, decide, follow, obtainCode, type PkcePair, pkce, signIn } from "./browser";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm, type Send, withVars } from "./helpers";

/** RFC 9126 pushed authorization requests: the endpoint, and the authorization endpoint given a request_uri. */

const REDIRECT = "https://app.example/callback";
const REQUEST_URI = /^urn:ietf:params:oauth:request_uri:lkp_[0-9a-f]{64}_[A-Za-z0-9_-]{43}$/;
let app: CreatedClient;
let spa: CreatedClient;
let strict: CreatedClient;

beforeAll(async () => {
  app = await createClient({
    client_name: "PAR App",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
  spa = await createClient({ client_name: "PAR SPA", redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" });
  strict = await createClient({
    client_name: "Strict",
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: "client_secret_post",
    require_pushed_authorization_requests: true,
  });
});

afterEach(() => setClock());

function authHeaders(client: CreatedClient): Record<string, string> {
  return client.client_secret && client.token_endpoint_auth_method === "client_secret_basic"
    ? { Authorization: basic(client.client_id, client.client_secret) }
    : {};
}

/** POST /par as `client` (its registered authentication) with `fields`. */
function push(client: CreatedClient, fields: Record<string, string | string[]>, send: Send = call): Promise<Response> {
  const secretPost: Record<string, string> =
    client.token_endpoint_auth_method === "client_secret_post" ? { client_secret: client.client_secret as string } : {};
  return postForm("/par", { client_id: client.client_id, ...secretPost, ...fields }, authHeaders(client), send);
}

function requestFields(p: PkcePair, extra: Record<string, string> = {}): Record<string, string> {
  return {
    response_type: "code",
    redirect_uri: REDIRECT,
    code_challenge: p.challenge,
    code_challenge_method: "S256",
    state: "pushed-state",
    scope: "mcp:read",
    resource: MCP_RESOURCE,
    ...extra,
  };
}

/** Pushes a valid request and returns its request_uri and PKCE pair. */
async function pushed(client: CreatedClient, extra: Record<string, string> = {}, send: Send = call) {
  const p = await pkce();
  const res = await push(client, requestFields(p, extra), send);
  expect(res.status).toBe(201);
  const body = (await res.json()) as { request_uri: string; expires_in: number };
  return { request_uri: body.request_uri, pkce: p };
}

async function expectErrorPage(res: Response, message: string): Promise<void> {
  expect(res.status).toBe(400);
  expect(res.headers.get("location")).toBeNull();
  expect(res.headers.get("content-type")).toMatch(/^text\/html/);
  expect(await res.text()).toContain(message);
}

const USED = "the request_uri is unknown, expired or already used; start again from the application";

describe("a pushed request answered at once (RFC 9126 §4)", () => {
  it("issues the code to a signed-in user who consented before, in a browser that never opened a pushed request", async () => {
    // Sign-in and consent through a plain request: the browser has a session, but no pushed-request binding yet.
    const known = await createClient({ client_name: "Known", redirect_uris: [REDIRECT], token_endpoint_auth_method: "client_secret_basic" });
    const p = await pkce();
    const plain = {
      response_type: "code",
      client_id: known.client_id,
      redirect_uri: REDIRECT,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      scope: "mcp:read",
      resource: MCP_RESOURCE,
    };
    const { browser } = await obtainCode(plain, REDIRECT);
    const { request_uri } = await pushed(known);
    const res = await browser.get(authorizeUrl({ client_id: known.client_id, request_uri }));
    const query = clientRedirect(res, REDIRECT);
    expect(query.get("code")).toBeTruthy();
    expect(query.get("state")).toBe("pushed-state");
    expect(res.headers.getSetCookie().filter((line) => line.startsWith("lk_browser="))).toHaveLength(1);
  });
});

describe("POST /par (RFC 9126 §2)", () => {
  it("answers 201 with request_uri and expires_in, not cacheable", async () => {
    const res = await push(app, requestFields(await pkce()));
    expect(res.status).toBe(201);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(["expires_in", "request_uri"]);
    expect(body.request_uri).toMatch(REQUEST_URI);
    expect(body.expires_in).toBe(60);
  });

  it("accepts a public client that sends only its client_id, and takes expires_in from PUSHED_REQUEST_TTL", async () => {
    expect((await push(spa, requestFields(await pkce()))).status).toBe(201);
    const res = await push(spa, requestFields(await pkce()), withVars({ PUSHED_REQUEST_TTL: "30" }));
    expect(((await res.json()) as { expires_in: number }).expires_in).toBe(30);
  });

  it("authenticates the client as the token endpoint does", async () => {
    const wrong = await postForm("/par", { client_id: app.client_id, ...requestFields(await pkce()) }, { Authorization: basic(app.client_id, "wrong") });
    expect(wrong.headers.get("www-authenticate")).toBe(`Basic realm="${ISSUER}", charset="UTF-8"`);
    await expectError(wrong, 401, "invalid_client", "client authentication failed");
    // A confidential client that only names itself has not authenticated.
    await expectError(
      await postForm("/par", { client_id: app.client_id, ...requestFields(await pkce()) }),
      401,
      "invalid_client",
      "client authentication failed",
    );
    await expectError(await postForm("/par", requestFields(await pkce())), 401, "invalid_client", "client authentication is required (client_id is missing)");
    await expectError(await postForm("/par", { client_id: "nobody", ...requestFields(await pkce()) }), 401, "invalid_client", "client authentication failed");
  });

  const invalid: Array<[string, Record<string, string | undefined>, number, string, string]> = [
    ["request_uri in the push", { request_uri: "urn:x" }, 400, "invalid_request", "request_uri must not be sent to the pushed authorization request endpoint"],
    ["missing response_type", { response_type: undefined }, 400, "invalid_request", "response_type is required"],
    ["implicit grant", { response_type: "token" }, 400, "unsupported_response_type", "only response_type=code is supported"],
    ["missing PKCE", { code_challenge: undefined }, 400, "invalid_request", "code_challenge is required (PKCE with S256)"],
    ["plain PKCE", { code_challenge_method: "plain" }, 400, "invalid_request", "code_challenge_method must be S256"],
    ["unregistered redirect_uri", { redirect_uri: "https://evil.example/cb" }, 400, "invalid_request", "redirect_uri is not registered for this client"],
    [
      "unknown resource",
      { resource: "https://unknown.example/" },
      400,
      "invalid_target",
      "resource https://unknown.example/ is not known to this authorization server",
    ],
    ["scope the resource lacks", { scope: "mcp:admin" }, 400, "invalid_scope", "scope mcp:admin is not supported by the requested resource"],
    ["request object", { request: "eyJ.x.y" }, 400, "request_not_supported", "request objects are not supported"],
    ["unknown prompt", { prompt: "create" }, 400, "invalid_request", "prompt value create is not supported"],
    ["bad max_age", { max_age: "-1" }, 400, "invalid_request", "max_age must be a non-negative integer"],
  ];
  for (const [name, change, status, error, description] of invalid) {
    it(`refuses ${name} at push time with ${error}`, async () => {
      const fields: Record<string, string> = {};
      for (const [k, v] of Object.entries({ ...requestFields(await pkce()), ...change })) if (v !== undefined) fields[k] = v;
      const res = await push(app, fields);
      expect(res.headers.get("cache-control")).toBe("no-store");
      await expectError(res, status, error, description);
    });
  }

  it("refuses a client without the authorization_code grant with unauthorized_client", async () => {
    const m2m = await createClient({ grant_types: ["client_credentials"], redirect_uris: [REDIRECT], token_endpoint_auth_method: "client_secret_basic" });
    await expectError(
      await push(m2m, requestFields(await pkce())),
      400,
      "unauthorized_client",
      "this client is not registered for the authorization code grant",
    );
  });

  it("answers 405 to other methods, 413 to a body over 64 KB, and 400 to a body that is not a form", async () => {
    const get = await call("/par");
    expect(get.headers.get("allow")).toBe("POST");
    await expectError(get, 405, "method_not_allowed", "use POST");
    await expectError(await push(app, { ...requestFields(await pkce()), nonce: "n".repeat(70_000) }), 413, "invalid_request", "the request body is too large");
    await expectError(
      await call("/par", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }),
      400,
      "invalid_request",
      "the request body must be application/x-www-form-urlencoded",
    );
  });
});

describe("the authorization endpoint with a request_uri (RFC 9126 §4)", () => {
  it("uses only the pushed parameters, through sign-in and consent, to a code the token endpoint redeems", async () => {
    const { request_uri, pkce: p } = await pushed(app);
    const browser = new Browser();
    // Parameters beside request_uri are ignored: the pushed state and scope count.
    const login = await browser.get(authorizeUrl({ client_id: app.client_id, request_uri, state: "forged", scope: "mcp:write" }));
    const consent = await follow(browser, await signIn(browser, login));
    const html = await consent.clone().text();
    expect(html).toContain("PAR App");
    expect(html).toContain("mcp:read");
    expect(html).not.toContain("mcp:write");
    const q = clientRedirect(await decide(browser, consent, "allow"), REDIRECT);
    expect([...q.keys()].sort()).toEqual(["code", "iss", "state"]);
    expect(q.get("state")).toBe("pushed-state");
    const token = await postForm(
      "/token",
      { grant_type: "authorization_code", code: q.get("code") as string, code_verifier: p.verifier, redirect_uri: REDIRECT },
      authHeaders(app),
    );
    expect(token.status).toBe(200);
    expect(await token.json()).toMatchObject({ token_type: "Bearer", scope: "mcp:read", refresh_token: expect.any(String) });
  });

  it("is one-time: after the code is issued the request_uri is refused with a page, never a redirect", async () => {
    const { request_uri } = await pushed(app);
    const { browser } = await obtainCode({ client_id: app.client_id, request_uri }, REDIRECT);
    await expectErrorPage(await browser.get(authorizeUrl({ client_id: app.client_id, request_uri })), USED);
    await expectErrorPage(await new Browser().get(authorizeUrl({ client_id: app.client_id, request_uri })), USED);
  });

  it("tolerates a reload by the same browser before the code, but not a second browser", async () => {
    const { request_uri } = await pushed(app, { prompt: "consent" });
    const url = authorizeUrl({ client_id: app.client_id, request_uri });
    const browser = new Browser();
    expect((await browser.get(url)).status).toBe(200);
    const reload = await browser.get(url);
    expect(reload.status).toBe(200);
    await expectErrorPage(await new Browser().get(url), USED);
    // The browser that opened it still finishes.
    const consent = await follow(browser, await signIn(browser, reload));
    expect(clientRedirect(await decide(browser, consent, "allow"), REDIRECT).get("code")).toBeTruthy();
  });

  it("gives one code when two tabs of the same browser both say yes", async () => {
    const { request_uri } = await pushed(app, { prompt: "consent" });
    const browser = new Browser();
    const url = authorizeUrl({ client_id: app.client_id, request_uri });
    const first = await follow(browser, await signIn(browser, await browser.get(url)));
    const second = await browser.get(url);
    expect(second.status).toBe(200);
    expect(clientRedirect(await decide(browser, first, "allow"), REDIRECT).get("code")).toBeTruthy();
    const refused = await decide(browser, second, "allow");
    await expectErrorPage(refused, "this authorization request was already answered or has expired; start again from the application");
  });

  it("refuses an expired request_uri (after expires_in) with a page", async () => {
    const { request_uri } = await pushed(app);
    const start = Date.now();
    setClock(() => start + 61_000);
    await expectErrorPage(await new Browser().get(authorizeUrl({ client_id: app.client_id, request_uri })), USED);
  });

  it("refuses another client's client_id with a page, and leaves the request to its own client", async () => {
    const { request_uri } = await pushed(app);
    await expectErrorPage(await new Browser().get(authorizeUrl({ client_id: spa.client_id, request_uri })), "the request_uri was not issued to this client");
    const { code } = await obtainCode({ client_id: app.client_id, request_uri }, REDIRECT);
    expect(code).toBeTruthy();
  });

  it("refuses unknown and malformed request_uris, and a missing client_id, with a page", async () => {
    const { request_uri } = await pushed(app);
    const forged = request_uri.replace(/_[A-Za-z0-9_-]{43}$/, `_${"A".repeat(43)}`);
    await expectErrorPage(await new Browser().get(authorizeUrl({ client_id: app.client_id, request_uri: forged })), USED);
    await expectErrorPage(await new Browser().get(authorizeUrl({ client_id: app.client_id, request_uri: "urn:ietf:params:oauth:request_uri:nope" })), USED);
    const otherObject = `urn:ietf:params:oauth:request_uri:lkp_${"0".repeat(64)}_${"A".repeat(43)}`;
    await expectErrorPage(await new Browser().get(authorizeUrl({ client_id: app.client_id, request_uri: otherObject })), USED);
    await expectErrorPage(await new Browser().get(authorizeUrl({ request_uri })), "client_id is missing");
  });

  it("validates the pushed request again: a resource deleted since the push is refused at the client", async () => {
    const resource = (await (
      await adminCall("POST", "/resources", { resource: "https://gone.example/api", name: "Gone", scopes_supported: ["gone:read"] })
    ).json()) as { id: string };
    const { request_uri } = await pushed(app, { resource: "https://gone.example/api", scope: "gone:read" });
    expect((await adminCall("DELETE", `/resources/${resource.id}`)).status).toBe(204);
    const q = clientRedirect(await new Browser().get(authorizeUrl({ client_id: app.client_id, request_uri })), REDIRECT);
    expect(Object.fromEntries(q)).toEqual({
      error: "invalid_target",
      error_description: "resource https://gone.example/api is not known to this authorization server",
      state: "pushed-state",
      iss: ISSUER,
    });
  });

  it("a client deleted since the push gets a page", async () => {
    const doomed = await createClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" });
    const { request_uri } = await pushed(doomed);
    expect((await adminCall("DELETE", `/clients/${doomed.client_id}`)).status).toBe(204);
    await expectErrorPage(await new Browser().get(authorizeUrl({ client_id: doomed.client_id, request_uri })), "the client is not known to this server");
  });

  it("answers a denial at the client and uses the request up", async () => {
    const { request_uri } = await pushed(spa, { scope: "mcp:write" });
    const browser = new Browser();
    const url = authorizeUrl({ client_id: spa.client_id, request_uri });
    const consent = await follow(browser, await signIn(browser, await browser.get(url)));
    const q = clientRedirect(await decide(browser, consent, "deny"), REDIRECT);
    expect(Object.fromEntries(q)).toEqual({ error: "access_denied", error_description: "the user denied the request", state: "pushed-state", iss: ISSUER });
    await expectErrorPage(await browser.get(url), USED);
  });
});

describe("require_pushed_authorization_requests (RFC 9126 §5, §6)", () => {
  it("a client that registered it must push: a plain request is refused at the client with invalid_request", async () => {
    const p = await pkce();
    const res = await new Browser().get(authorizeUrl({ client_id: strict.client_id, ...requestFields(p) }));
    expect(Object.fromEntries(clientRedirect(res, REDIRECT))).toEqual({
      error: "invalid_request",
      error_description: "this client must use pushed authorization requests (RFC 9126)",
      state: "pushed-state",
      iss: ISSUER,
    });
    const { request_uri } = await pushed(strict);
    expect((await obtainCode({ client_id: strict.client_id, request_uri }, REDIRECT)).code).toBeTruthy();
  });

  it("server-wide, advertised in the metadata, for every client", async () => {
    const send = withVars({ REQUIRE_PUSHED_AUTHORIZATION_REQUESTS: "true" });
    const metadata = (await (await send("/.well-known/oauth-authorization-server")).json()) as Record<string, unknown>;
    expect(metadata.require_pushed_authorization_requests).toBe(true);
    const plain = await new Browser(send).get(authorizeUrl({ client_id: spa.client_id, ...requestFields(await pkce()) }));
    expect(clientRedirect(plain, REDIRECT).get("error_description")).toBe("this client must use pushed authorization requests (RFC 9126)");
    const { request_uri } = await pushed(spa, {}, send);
    expect((await obtainCode({ client_id: spa.client_id, request_uri }, REDIRECT, new Browser(send))).code).toBeTruthy();
  });

  it("is off by default, and the metadata names the endpoint", async () => {
    const metadata = (await (await call("/.well-known/openid-configuration")).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      pushed_authorization_request_endpoint: `${ISSUER}/par`,
      require_pushed_authorization_requests: false,
      pushed_client_registration_supported: true,
    });
    expect((await createClient({ redirect_uris: [REDIRECT] })).require_pushed_authorization_requests).toBe(false);
  });
});
