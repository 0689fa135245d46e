import { exports } from "cloudflare:workers";
import { Hono } from "hono";
import { beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, type HttpsigOptions, requireAccessToken, signRequest, type TokenVariables } from "../../workers/resource-server";
import { basic, type CreatedClient, createClient, MCP_RESOURCE, postForm } from "./helpers";
import { type SigningKey, signedPost, signingKey } from "./httpsig-signer";

/**
 * End to end with HTTP message signatures (draft-richer-oauth-httpsig-03): an agent authenticates at
 * /token by a signed request (httpsig_client_auth), gets an `httpsig` token bound to its key, and calls a
 * resource protected by the kit with `Authorization: HTTPSig` and a signature tagged `httpsig-oauth`.
 */
const META = "http://localhost:8788/.well-known/oauth-protected-resource/mcp";
let key: SigningKey;
let other: SigningKey;
let agent: CreatedClient;
let token: string;

beforeAll(async () => {
  key = await signingKey("ES256", "agent-key");
  other = await signingKey("ES256", "agent-key");
  agent = await createClient({
    grant_types: ["client_credentials"],
    token_endpoint_auth_method: "httpsig_client_auth",
    jwks: { keys: [key.jwk] },
    scope: "mcp:read",
  });
  const res = await signedPost("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE, client_id: agent.client_id, scope: "mcp:read" }, key);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { access_token: string; token_type: string };
  expect(body.token_type).toBe("httpsig");
  token = body.access_token;
});

/** A replay store for the tests: a Set, as a Durable Object would be. */
function replayStore() {
  const seen = new Set<string>();
  return async (id: string) => {
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  };
}

function app(httpsig: HttpsigOptions = { claimNonce: replayStore() }) {
  const verify = createTokenVerifier({
    issuer: "http://localhost:8787",
    resource: MCP_RESOURCE,
    fetch: ((input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init))) as typeof fetch,
  });
  const a = new Hono<{ Variables: TokenVariables }>();
  a.use("/mcp", requireAccessToken({ verify, resource: MCP_RESOURCE, scopes: ["mcp:read"], httpsig }));
  a.on(["GET", "POST"], "/mcp", (c) => c.json({ sub: c.var.accessToken.sub, kid: c.var.accessToken.cnf?.jwk?.kid }));
  return a;
}

type Sign = Partial<Parameters<typeof signRequest>[1]> & { url?: string; scheme?: string; body?: string; sendUrl?: string; signMethod?: string };

/** A request to the resource signed with the agent's key (or what `o` changes). */
async function signed(a: ReturnType<typeof app>, o: Sign = {}) {
  const { url, scheme = "HTTPSig", body, sendUrl, signMethod, ...overrides } = o;
  const method = body !== undefined ? "POST" : "GET";
  const headers = await signRequest(
    { method: signMethod ?? method, url: url ?? MCP_RESOURCE, headers: { authorization: `${scheme} ${token}` }, body },
    { privateKey: key.privateKey, alg: "ES256", keyid: "agent-key", tag: "httpsig-oauth", ...overrides },
  );
  return a.request(sendUrl ?? MCP_RESOURCE, { method, headers, body });
}

async function expectRefusal(res: Response, description: string, scheme = "HTTPSig") {
  expect(res.status).toBe(401);
  const algs = scheme === "DPoP" ? ', algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"' : "";
  expect(res.headers.get("www-authenticate")).toBe(`${scheme} resource_metadata="${META}", error="invalid_token", error_description="${description}"${algs}`);
  expect(await res.json()).toEqual({ error: "invalid_token", error_description: description });
}

describe("resource-server kit: HTTPSig-bound tokens", () => {
  it("accepts a request signed by the bound key, in any case of the scheme name", async () => {
    const a = app();
    for (const scheme of ["HTTPSig", "httpsig", "hTtPsIg"]) {
      const res = await signed(a, { scheme });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ sub: agent.client_id, kid: "agent-key" });
    }
  });

  it("accepts a signed POST whose body matches its covered Content-Digest", async () => {
    expect((await signed(app(), { body: '{"jsonrpc":"2.0"}' })).status).toBe(200);
  });

  it("refuses the token as Bearer, and as DPoP", async () => {
    const description = "the access token is bound to an HTTP message signature key; send it with the HTTPSig scheme and a signature";
    await expectRefusal(await app().request(MCP_RESOURCE, { headers: { authorization: `Bearer ${token}` } }), description, "Bearer");
    await expectRefusal(await app().request(MCP_RESOURCE, { headers: { authorization: `DPoP ${token}` } }), description, "DPoP");
  });

  it("refuses a replayed nonce", async () => {
    const a = app();
    expect((await signed(a, { nonce: "once" })).status).toBe(200);
    await expectRefusal(await signed(a, { nonce: "once" }), "the signature's nonce was already used");
  });

  const refused: Array<[string, () => Sign, string]> = [
    ["the token request tag", () => ({ tag: "httpsig-oauth-token-request" }), "an HTTP message signature tagged httpsig-oauth is required"],
    ["a signature not covering authorization", () => ({ components: ["@method", "@target-uri"] }), "the signature must cover authorization"],
    ["a stale created", () => ({ created: Math.floor(Date.now() / 1000) - 31 }), "the signature's created time is outside the allowed window of 30 seconds"],
    ["an unknown keyid", () => ({ keyid: "other" }), "keyid other is not the key the access token is bound to"],
    ["a signature by another key", () => ({ privateKey: other.privateKey }), "the signature does not verify with the key agent-key"],
    [
      "a signature for another host, sent with that Host",
      () => ({ url: "http://evil.example/mcp", sendUrl: "http://evil.example/mcp" }),
      "the signature does not verify with the key agent-key",
    ],
    ["a signature for another method", () => ({ signMethod: "POST" }), "the signature does not verify with the key agent-key"],
  ];
  for (const [name, o, description] of refused) {
    it(`refuses ${name}`, async () => {
      await expectRefusal(await signed(app(), o()), description);
    });
  }

  it("refuses a tampered body", async () => {
    const headers = await signRequest(
      { method: "POST", url: MCP_RESOURCE, headers: { authorization: `HTTPSig ${token}` }, body: "original" },
      { privateKey: key.privateKey, alg: "ES256", keyid: "agent-key", tag: "httpsig-oauth" },
    );
    await expectRefusal(
      await app().request(MCP_RESOURCE, { method: "POST", headers, body: "tampered" }),
      "Content-Digest sha-256 does not match the request body",
    );
  });

  it("refuses the HTTPSig scheme with a token that is not bound", async () => {
    const plain = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic", scope: "mcp:read" });
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE },
      { Authorization: basic(plain.client_id, plain.client_secret as string) },
    );
    const bearer = ((await res.json()) as { access_token: string }).access_token;
    const headers = await signRequest(
      { method: "GET", url: MCP_RESOURCE, headers: { authorization: `HTTPSig ${bearer}` } },
      { privateKey: key.privateKey, alg: "ES256", keyid: "agent-key", tag: "httpsig-oauth" },
    );
    await expectRefusal(await app().request(MCP_RESOURCE, { headers }), "the access token is not bound to an HTTP message signature key");
  });
});
