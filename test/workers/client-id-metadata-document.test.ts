import { decodeJwt, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { clientIdUrlProblem } from "../../workers/clients/client-id-url";
import { clearClientKeys } from "../../workers/clients/client-keys";
import { forgetMetadataDocuments, freshness } from "../../workers/clients/metadata-document";
import { JWT_BEARER } from "../../workers/clients/private-key-jwt";
import { type OutboundPolicy, setOutboundTransport } from "../../workers/clients/safe-fetch";
import { setClock } from "../../workers/clock";
import { authorizeUrl, Browser, clientRedirect, decide, follow, pkce, signIn } from "./browser";
import { call, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";
import { type SigningKey, signedPost, signingKey } from "./httpsig-signer";

/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document) inside workerd, with
 * the outbound transport stubbed: URL rules, document rules, where failures surface, caching within
 * the configured bounds, and public and private_key_jwt clients. The real fetch rules against a real
 * HTTP server are exercised in test/e2e/client-id-metadata-document.test.ts.
 */
const REDIRECT = "https://agent.example/callback";
const PROD: OutboundPolicy = { timeoutMs: 3000, allowedPorts: [], allowInsecureLoopbackClientIds: false };

/** The documents the stubbed internet serves, and how often each was fetched. */
const served = new Map<string, () => Response>();
const fetches = new Map<string, number>();
let nextId = 0;

/** A fresh client_id URL (so cached documents of other tests never interfere). */
function newClientId(): string {
  return `https://agent.example/clients/${++nextId}.json`;
}

function publish(url: string, document: unknown, headers: Record<string, string> = {}, status = 200): void {
  served.set(url, () => Response.json(document, { status, headers }));
}

function publicDocument(clientId: string, extra: Record<string, unknown> = {}) {
  return { client_id: clientId, client_name: "Helpful Agent", redirect_uris: [REDIRECT], scope: "mcp:read", ...extra };
}

beforeEach(() => {
  setOutboundTransport(async (input) => {
    const url = String(input);
    fetches.set(url, (fetches.get(url) ?? 0) + 1);
    return served.get(url)?.() ?? new Response("not found", { status: 404 });
  });
});

afterEach(() => {
  setOutboundTransport();
  setClock();
  forgetMetadataDocuments();
  clearClientKeys();
});

function authorizeParams(clientId: string, challenge: string) {
  return {
    response_type: "code",
    client_id: clientId,
    redirect_uri: REDIRECT,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state: "s",
    resource: MCP_RESOURCE,
    scope: "mcp:read",
  };
}

/** GET /authorize for `clientId`; it must be the error page, never a redirect. */
async function expectAuthorizeErrorPage(clientId: string, message: string): Promise<void> {
  const res = await new Browser().get(authorizeUrl(authorizeParams(clientId, "a".repeat(43))));
  expect(res.status).toBe(400);
  expect(res.headers.get("location")).toBeNull();
  const html = await res.text();
  expect(html).toContain("This request cannot be completed");
  expect(html).toContain(message.replaceAll("'", "&#39;").replaceAll('"', "&quot;"));
}

/** POST /token as `clientId` (a public client); client authentication must fail first. */
async function expectTokenInvalidClient(clientId: string, description: string): Promise<void> {
  await expectError(await postForm("/token", { grant_type: "authorization_code", code: "x", client_id: clientId }), 401, "invalid_client", description);
}

describe("Client Identifier URL rules", () => {
  const cases: Array<[string, string | null]> = [
    ["https://agent.example/client.json", null],
    ["https://agent.example/", null],
    ["https://agent.example/c?v=1", null],
    ["http://agent.example/c", "must use https"],
    ["https://agent.example", "must contain a path"],
    ["https://agent.example?x=1", "must contain a path"],
    ["https://agent.example/c#f", "must not contain a fragment"],
    ["https://user@agent.example/c", "must not contain user information"],
    ["https://agent.example/a/../c", "must not contain . or .. path segments"],
    ["https://agent.example/./c", "must not contain . or .. path segments"],
    ["https://agent.example/a/%2E%2e/c", "must not contain . or .. path segments"],
    ["https://agent.example/a/..", "must not contain . or .. path segments"],
    ["https://Agent.example/c", "must be written in canonical form (lowercase scheme and host, no default port, no needless escapes)"],
    ["HTTPS://agent.example/c", "must be written in canonical form (lowercase scheme and host, no default port, no needless escapes)"],
    ["https://agent.example:443/c", "must be written in canonical form (lowercase scheme and host, no default port, no needless escapes)"],
    ["https://agent.example:8443/c", "must not use port 8443 (only 443 is allowed)"],
    ["https://10.0.0.7/c", "must not point to a special-use IP address (private-use)"],
    ["https://localhost/c", "must name a public host"],
    [`https://agent.example/${"a".repeat(2000)}`, "must not be longer than 2000 characters"],
  ];
  for (const [url, problem] of cases) it(`${url.slice(0, 60)} → ${problem ?? "allowed"}`, () => expect(clientIdUrlProblem(url, PROD)).toBe(problem));
});

describe("documents that are refused", () => {
  const cases: Array<[string, (id: string) => unknown, string]> = [
    ["a client_id that differs", (id) => publicDocument(`${id}?other`), "its client_id is not exactly the URL it was fetched from"],
    ["no client_id", (id) => ({ ...publicDocument(id), client_id: undefined }), "its client_id is not exactly the URL it was fetched from"],
    ["not an object", () => [1, 2], "it is not a JSON object"],
    ["a client_secret", (id) => publicDocument(id, { client_secret: "s" }), "it must not contain client_secret"],
    ["a client_secret_expires_at", (id) => publicDocument(id, { client_secret_expires_at: 0 }), "it must not contain client_secret_expires_at"],
    ...["client_secret_basic", "client_secret_post", "client_secret_jwt", "tls_client_auth"].map((method): [string, (id: string) => unknown, string] => [
      `token_endpoint_auth_method ${method}`,
      (id) => publicDocument(id, { token_endpoint_auth_method: method }),
      "token_endpoint_auth_method must be none, private_key_jwt or httpsig_client_auth (a document cannot share a secret)",
    ]),
    [
      "private_key_jwt without keys",
      (id) => publicDocument(id, { token_endpoint_auth_method: "private_key_jwt" }),
      "token_endpoint_auth_method: private_key_jwt needs the client's public keys in jwks or jwks_uri",
    ],
    [
      "a private key",
      (id) => publicDocument(id, { token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y", d: "d" }] } }),
      "jwks.keys.0: must not contain private key material",
    ],
    [
      "a key jose cannot import",
      (id) => publicDocument(id, { token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [{ kty: "EC", crv: "P-256", x: "bad", y: "bad" }] } }),
      "jwks.keys.0: is not a usable ES256 public key",
    ],
    [
      "jwks and jwks_uri",
      (id) => publicDocument(id, { token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [{ kty: "EC" }] }, jwks_uri: "https://agent.example/jwks" }),
      "jwks and jwks_uri must not both be present",
    ],
    [
      "a jwks_uri at a special-use address",
      (id) => publicDocument(id, { token_endpoint_auth_method: "private_key_jwt", jwks_uri: "https://169.254.169.254/jwks" }),
      "jwks_uri must not point to a special-use IP address (link-local)",
    ],
    [
      "an http redirect URI",
      (id) => publicDocument(id, { redirect_uris: ["http://agent.example/cb"] }),
      "redirect_uri 'http://agent.example/cb' must use https (http is allowed only for loopback)",
    ],
    [
      "a redirect URI with a stray %",
      (id) => publicDocument(id, { redirect_uris: ["https://agent.example/%"] }),
      "redirect_uri 'https://agent.example/%' must contain only RFC 3986 characters (percent-encode spaces, quotes, apostrophes, backslashes, control and non-ASCII characters, and follow each % by two hex digits)",
    ],
    ["no redirect URI", (id) => publicDocument(id, { redirect_uris: [] }), "redirect_uris is required for the authorization_code grant"],
    [
      "client_credentials without keys",
      (id) => publicDocument(id, { grant_types: ["client_credentials"] }),
      "client_credentials requires a confidential client (not token_endpoint_auth_method none)",
    ],
  ];
  for (const [name, make, reason] of cases) {
    it(`refuses ${name}: error page at /authorize, 401 invalid_client at /token`, async () => {
      const id = newClientId();
      publish(id, make(id));
      const description = `the client's metadata document is invalid: ${reason}`;
      await expectAuthorizeErrorPage(id, description);
      await expectTokenInvalidClient(id, description);
      // Invalid documents are never cached ("MUST NOT cache documents which are invalid or malformed").
      expect(fetches.get(id)).toBe(2);
    });
  }
});

describe("documents that cannot be fetched", () => {
  it("shows the error page at /authorize and answers 401 at /token, and never caches the failure", async () => {
    const cases: Array<[(id: string) => void, string]> = [
      [
        (id) => served.set(id, () => new Response(null, { status: 302, headers: { Location: "https://elsewhere.example/c" } })),
        "answered with a redirect (HTTP 302), which is not followed",
      ],
      [(id) => publish(id, { error: "gone" }, {}, 404), "answered HTTP 404, not 200"],
      [
        (id) => served.set(id, () => new Response(JSON.stringify(publicDocument(id)), { headers: { "Content-Type": "text/html" } })),
        "is not JSON (Content-Type 'text/html')",
      ],
      [(id) => served.set(id, () => Response.json({ ...publicDocument(id), padding: "x".repeat(6000) })), "is larger than 5120 bytes"],
    ];
    for (const [serve, reason] of cases) {
      const id = newClientId();
      serve(id);
      await expectAuthorizeErrorPage(id, `the client's metadata document ${reason}`);
      await expectTokenInvalidClient(id, `the client's metadata document ${reason}`);
      expect(fetches.get(id)).toBe(2);
    }
  });

  it("refuses a client_id URL that breaks the rules without fetching it", async () => {
    const before = [...fetches.values()].reduce((a, b) => a + b, 0);
    for (const [id, reason] of [
      ["https://agent.example/c#frag", "must not contain a fragment"],
      ["https://user:pw@agent.example/c", "must not contain user information"],
      ["https://169.254.169.254/latest/meta-data/", "must not point to a special-use IP address (link-local)"],
      ["http://agent.example/c", "must use https"],
    ]) {
      await expectAuthorizeErrorPage(id as string, `the client_id URL ${reason}`);
      await expectTokenInvalidClient(id as string, `the client_id URL ${reason}`);
    }
    expect([...fetches.values()].reduce((a, b) => a + b, 0)).toBe(before);
  });
});

describe("a public client identified by its metadata document", () => {
  it("completes the code flow; the consent page shows the host and marks the client self-asserted", async () => {
    const id = newClientId();
    publish(id, publicDocument(id), { "Cache-Control": "max-age=300" });
    const { verifier, challenge } = await pkce();
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl(authorizeParams(id, challenge)))));
    const html = await consent.clone().text();
    expect(html).toContain('Allow <strong>Helpful Agent</strong> from <strong class="host">agent.example</strong> to access your account?');
    expect(html).toContain("<strong>Self-asserted:</strong>");
    const code = clientRedirect(await decide(browser, consent, "allow"), REDIRECT).get("code") as string;
    const res = await postForm("/token", { grant_type: "authorization_code", code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: id });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string };
    expect(decodeJwt(body.access_token)).toMatchObject({ client_id: id, aud: MCP_RESOURCE, scope: "mcp:read", sub: "usr_dev_alice" });
    // One fetch served the whole flow: authorize, the pages, and the token request.
    expect(fetches.get(id)).toBe(1);
    // Consent is remembered for this client_id: straight back to the client next time.
    expect(clientRedirect(await browser.get(authorizeUrl(authorizeParams(id, challenge))), REDIRECT).get("code")).toBeTruthy();
  });

  it("works with a client_id URL longer than a KV key may be (512 bytes)", async () => {
    const id = `https://agent.example/clients/${"x".repeat(700)}/${++nextId}.json`;
    publish(id, publicDocument(id), { "Cache-Control": "max-age=300" });
    // An unknown code: the client was resolved and authenticated first, so the answer is about the code.
    await expectError(
      await postForm("/token", { grant_type: "authorization_code", code: "x", code_verifier: "v".repeat(43), redirect_uri: REDIRECT, client_id: id }),
      400,
      "invalid_grant",
      "the authorization code is invalid, expired or already used",
    );
    expect(fetches.get(id)).toBe(1);
  });

  it("names a client without client_name by its host alone", async () => {
    const id = newClientId();
    publish(id, { ...publicDocument(id), client_name: undefined });
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl(authorizeParams(id, (await pkce()).challenge)))));
    expect(await consent.text()).toContain('Allow <strong class="host">agent.example</strong> to access your account?');
  });

  it("refuses a redirect URI the document does not list", async () => {
    const id = newClientId();
    publish(id, publicDocument(id));
    const res = await new Browser().get(authorizeUrl({ ...authorizeParams(id, "a".repeat(43)), redirect_uri: "https://evil.example/cb" }));
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("redirect_uri is not registered for this client");
  });
});

describe("caching within the configured bounds (CIMD_CACHE_MIN_TTL 60, CIMD_CACHE_MAX_TTL 600)", () => {
  const T = 1_900_000_000;
  /** Resolves the client by asking /token, which fails later (bad code) once the client is known. */
  async function touch(id: string): Promise<void> {
    const res = await postForm("/token", { grant_type: "authorization_code", code: "x", code_verifier: "v".repeat(43), client_id: id });
    expect(res.status).toBe(400);
  }
  const at = (seconds: number) => setClock(() => (T + seconds) * 1000);

  for (const [header, ttl] of [
    ["max-age=120", 120],
    ["public, s-maxage=200, max-age=100", 200],
    ["max-age=300", 300],
    ["max-age=86400", 600],
    ["max-age=5", 60],
    ["no-store", 60],
    ["no-cache, max-age=300", 60],
    [undefined, 60],
  ] as const) {
    it(`Cache-Control ${header ?? "(none)"} → refetched after ${ttl} s`, async () => {
      const id = newClientId();
      publish(id, publicDocument(id), header ? { "Cache-Control": header } : {});
      at(0);
      await touch(id);
      at(ttl - 1);
      forgetMetadataDocuments(); // KV must hold it too, not just this isolate
      await touch(id);
      expect(fetches.get(id)).toBe(1);
      at(ttl);
      await touch(id);
      expect(fetches.get(id)).toBe(2);
    });
  }

  it("subtracts Age", () => {
    expect(freshness(new Headers({ "Cache-Control": "max-age=300", Age: "100" }))).toBe(200);
    expect(freshness(new Headers({ "Cache-Control": "max-age=300", Age: "400" }))).toBe(0);
    expect(freshness(new Headers({ "Cache-Control": 'max-age="90"' }))).toBe(90);
    expect(freshness(new Headers({ "Cache-Control": "max-age=soon" }))).toBe(0);
  });

  it("takes a changed document into account within the bound", async () => {
    const id = newClientId();
    publish(id, publicDocument(id), { "Cache-Control": "max-age=86400" });
    at(0);
    await touch(id);
    publish(id, publicDocument(id, { client_secret: "leaked" }), { "Cache-Control": "max-age=86400" });
    at(599);
    await touch(id);
    at(600);
    await expectTokenInvalidClient(id, "the client's metadata document is invalid: it must not contain client_secret");
  });

  it("fetches a new client's document once for concurrent requests", async () => {
    const id = newClientId();
    publish(id, publicDocument(id));
    await Promise.all([touch(id), touch(id), touch(id)]);
    expect(fetches.get(id)).toBe(1);
  });
});

describe("a confidential client identified by its metadata document (private_key_jwt)", () => {
  let key: CryptoKey;
  let jwk: JWK;
  beforeAll(async () => {
    const pair = await generateKeyPair("ES256");
    key = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: "agent-1" };
  });

  function assertion(id: string, claims: Record<string, unknown> = {}): Promise<string> {
    const t = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: id, sub: id, aud: ISSUER, iat: t, exp: t + 60, jti: crypto.randomUUID(), ...claims })
      .setProtectedHeader({ alg: "ES256", kid: "agent-1", typ: "client-authentication+jwt" })
      .sign(key);
  }

  const confidential = (id: string, keys: Record<string, unknown>) => ({
    client_id: id,
    client_name: "Keyed Agent",
    grant_types: ["client_credentials"],
    token_endpoint_auth_method: "private_key_jwt",
    scope: "mcp:read",
    ...keys,
  });

  for (const kind of ["jwks", "jwks_uri"] as const) {
    it(`gets a client_credentials token with keys from ${kind}`, async () => {
      const id = newClientId();
      const jwksUri = `${id.replace(".json", "")}/jwks.json`;
      publish(id, confidential(id, kind === "jwks" ? { jwks: { keys: [jwk] } } : { jwks_uri: jwksUri }));
      publish(jwksUri, { keys: [jwk] }, { "Content-Type": "application/jwk-set+json" });
      const res = await postForm("/token", {
        grant_type: "client_credentials",
        resource: MCP_RESOURCE,
        client_assertion_type: JWT_BEARER,
        client_assertion: await assertion(id),
      });
      expect(res.status).toBe(200);
      expect(decodeJwt(((await res.json()) as { access_token: string }).access_token)).toMatchObject({ sub: id, client_id: id, scope: "mcp:read" });
      await expectError(
        await postForm("/token", {
          grant_type: "client_credentials",
          client_assertion_type: JWT_BEARER,
          client_assertion: await assertion(id, { aud: `${ISSUER}/token` }),
        }),
        401,
        "invalid_client",
        "the client assertion's aud must be the issuer identifier, as a single string (RFC 10070)",
      );
      // A confidential document client cannot present itself as public.
      await expectError(await postForm("/token", { grant_type: "client_credentials", client_id: id }), 401, "invalid_client", "client authentication failed");
    });
  }
});

describe("a client whose document registers httpsig_client_auth", () => {
  let key: SigningKey;
  beforeAll(async () => {
    key = await signingKey("ES256", "agent-sig");
  });

  for (const kind of ["jwks", "jwks_uri"] as const) {
    it(`authenticates by an HTTP message signature with keys from ${kind}, and gets an httpsig-bound token`, async () => {
      const id = newClientId();
      const jwksUri = `${id.replace(".json", "")}/jwks.json`;
      const keys = kind === "jwks" ? { jwks: { keys: [key.jwk] } } : { jwks_uri: jwksUri };
      publish(id, { client_id: id, grant_types: ["client_credentials"], token_endpoint_auth_method: "httpsig_client_auth", scope: "mcp:read", ...keys });
      publish(jwksUri, { keys: [key.jwk] }, { "Content-Type": "application/jwk-set+json" });
      const res = await signedPost("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE, client_id: id }, key);
      expect(res.status, await res.clone().text()).toBe(200);
      const body = (await res.json()) as { access_token: string; token_type: string };
      expect(body.token_type).toBe("httpsig");
      const { kty, crv, x, y } = key.jwk;
      expect(decodeJwt(body.access_token)).toMatchObject({
        client_id: id,
        scope: "mcp:read",
        cnf: { jwk: { kty, crv, x, y, kid: "agent-sig", alg: "ES256" } },
      });
      // Another key under the same kid proves nothing; nor does an unsigned request naming the client.
      const impostor = await signingKey("ES256", "agent-sig");
      await expectError(
        await signedPost("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE, client_id: id }, impostor),
        401,
        "invalid_client",
        "the signature does not verify with the key agent-sig",
      );
      await expectError(await postForm("/token", { grant_type: "client_credentials", client_id: id }), 401, "invalid_client", "client authentication failed");
    });
  }
});

describe("metadata", () => {
  it("advertises client_id_metadata_document_supported", async () => {
    const m = (await (await call("/.well-known/oauth-authorization-server")).json()) as Record<string, unknown>;
    expect(m.client_id_metadata_document_supported).toBe(true);
  });
});

describe("abuse limits on metadata document fetches", () => {
  it("fetches documents of one host at most CIMD_FETCH_LIMIT times a minute (150 in tests)", { timeout: 60_000 }, async () => {
    const fetchedFlood = () => [...fetches].filter(([u]) => u.startsWith("https://flood.example/")).reduce((n, [, c]) => n + c, 0);
    let last = "";
    for (let i = 0; i < 301 && !last.includes("fetched too often"); i++) {
      // Each URL is new and answers 404, so nothing is cached and every request would fetch.
      const res = await call(`/authorize?client_id=${encodeURIComponent(`https://flood.example/c/${i}.json`)}&response_type=code`);
      expect(res.status).toBe(400);
      last = await res.text();
    }
    expect(last).toContain("the client&#39;s metadata document was fetched too often; try again in a minute");
    // A fixed one-minute window: the limit is reached after 150 fetches, or up to 300 across a boundary.
    expect(fetchedFlood()).toBeGreaterThanOrEqual(150);
    expect(fetchedFlood()).toBeLessThanOrEqual(300);
    // Other hosts are not affected.
    expect(await call(`/authorize?client_id=${encodeURIComponent(newClientId())}&response_type=code`).then((r) => r.text())).not.toContain("fetched too often");
  });

  it("refetches a document that was valid before under its own budget, so made-up URLs on its host cannot lock it out", { timeout: 60_000 }, async () => {
    const known = "https://crowded.example/agent.json";
    publish(known, publicDocument(known), { "Cache-Control": "max-age=60" });
    const page = () => call(`/authorize?client_id=${encodeURIComponent(known)}&response_type=code`).then((r) => r.text());
    expect(await page()).not.toContain("fetched too often");
    expect(fetches.get(known)).toBe(1);
    // Its copy expires; meanwhile someone spends the host's budget on URLs that never had a document.
    const later = Date.now() + 120_000;
    setClock(() => later);
    forgetMetadataDocuments();
    let flooded = "";
    for (let i = 0; i < 301 && !flooded.includes("fetched too often"); i++) {
      flooded = await call(`/authorize?client_id=${encodeURIComponent(`https://crowded.example/junk/${i}.json`)}&response_type=code`).then((r) => r.text());
    }
    expect(flooded).toContain("fetched too often");
    expect(await page()).not.toContain("fetched too often");
    expect(fetches.get(known)).toBe(2);
  });
});
