import { exports } from "cloudflare:workers";
import { Hono } from "hono";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, type DpopOptions, requireAccessToken, type TokenVariables } from "../../workers/resource-server";
import { DpopKey } from "./dpop";
import { basic, createClient, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

/**
 * The resource-server kit with DPoP-bound tokens (RFC 9449 §7): the proof checked against this resource's
 * URL, the token's key and hash; Bearer use refused; challenges per scheme with `algs`; replay refused
 * through the hook the resource supplies.
 */
const RESOURCE = "https://rs.example/mcp";
const META = "https://rs.example/.well-known/oauth-protected-resource/mcp";
const ALGS = 'algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"';
let issuerKey: CryptoKey;
let issuerJwk: JWK;
let key: DpopKey;

const testFetch = (async () => Response.json({ keys: [issuerJwk] })) as typeof fetch;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256");
  issuerKey = pair.privateKey;
  issuerJwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" };
  key = await DpopKey.generate();
});

function sign(claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: "https://as.example",
    aud: RESOURCE,
    sub: "usr_1",
    client_id: "c1",
    iat: now,
    exp: now + 300,
    jti: "j1",
    scope: "mcp:read",
    ...claims,
  })
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "k1" })
    .sign(issuerKey);
}

/** A DPoP-bound token for `key`. */
const boundToken = () => sign({ cnf: { jkt: key.jkt } });

/** A replay store for the tests: a Set, as a Durable Object would be. */
function replayStore() {
  const seen = new Set<string>();
  const calls: Array<{ id: string; until: number }> = [];
  const claimProof = async (id: string, until: number) => {
    calls.push({ id, until });
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  };
  return { claimProof, calls };
}

function app(dpop: DpopOptions = {}, scopes = ["mcp:read"], resource = RESOURCE) {
  const verify = createTokenVerifier({ issuer: "https://as.example", resource, fetch: testFetch });
  const a = new Hono<{ Variables: TokenVariables }>();
  a.use("/mcp", requireAccessToken({ verify, resource, scopes, dpop }));
  a.on(["GET", "POST"], "/mcp", (c) => c.json({ sub: c.var.accessToken.sub, jkt: c.var.accessToken.cnf?.jkt }));
  return a;
}

function request(a: ReturnType<typeof app>, authorization?: string, proof?: string, init: { url?: string; method?: string } = {}) {
  const headers: Record<string, string> = {};
  if (authorization) headers.Authorization = authorization;
  if (proof) headers.DPoP = proof;
  return a.request(init.url ?? `${RESOURCE}`, { method: init.method ?? "GET", headers });
}

/** A proof for GET https://rs.example/mcp with `token`; no nonce (the kit asks for none). */
const proofFor = (token: string, o: Parameters<DpopKey["proof"]>[0] = {}) => key.proof({ htm: "GET", htu: RESOURCE, accessToken: token, nonce: null, ...o });

async function expectRefusal(res: Response, status: number, error: string, description: string, wwwAuthenticate: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("www-authenticate")).toBe(wwwAuthenticate);
  expect(await res.json()).toEqual({ error, error_description: description });
}

const dpopChallenge = (error: string, description: string) => `DPoP resource_metadata="${META}", error="${error}", error_description="${description}", ${ALGS}`;

describe("resource-server kit: DPoP-bound tokens (RFC 9449 §7.1)", () => {
  it("accepts the DPoP scheme with a valid proof, and claims the proof once through the hook", async () => {
    const store = replayStore();
    const token = await boundToken();
    const res = await request(app(store), `DPoP ${token}`, await proofFor(token));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sub: "usr_1", jkt: key.jkt });
    expect(store.calls).toEqual([{ id: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), until: expect.any(Number) }]);
    const now = Math.floor(Date.now() / 1000);
    expect(store.calls[0]?.until).toBeGreaterThan(now + 59);
    expect(store.calls[0]?.until).toBeLessThanOrEqual(now + 62);
  });

  it("refuses a replayed proof when the resource supplies claimProof", async () => {
    const a = app(replayStore());
    const token = await boundToken();
    const proof = await proofFor(token);
    expect((await request(a, `DPoP ${token}`, proof)).status).toBe(200);
    const description = "the DPoP proof was already used";
    await expectRefusal(await request(a, `DPoP ${token}`, proof), 401, "invalid_dpop_proof", description, dpopChallenge("invalid_dpop_proof", description));
  });

  it("refuses the DPoP-bound token as Bearer (§7.2), offering DPoP", async () => {
    const token = await boundToken();
    const description = "the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof";
    const challenge = `Bearer resource_metadata="${META}", error="invalid_token", error_description="${description}", DPoP resource_metadata="${META}", ${ALGS}`;
    await expectRefusal(await request(app(), `Bearer ${token}`), 401, "invalid_token", description, challenge);
    await expectRefusal(await request(app(), `Bearer ${token}`, await proofFor(token)), 401, "invalid_token", description, challenge);
  });

  it("refuses the DPoP scheme without a proof", async () => {
    const token = await boundToken();
    const description = "a DPoP proof is required with a DPoP-bound access token";
    await expectRefusal(await request(app(), `DPoP ${token}`), 401, "invalid_dpop_proof", description, dpopChallenge("invalid_dpop_proof", description));
  });

  it("refuses a proof by another key with invalid_token (§6)", async () => {
    const token = await boundToken();
    const other = await DpopKey.generate();
    const description = "the DPoP proof is not signed by the key the access token is bound to";
    const proof = await other.proof({ htm: "GET", htu: RESOURCE, accessToken: token, nonce: null });
    await expectRefusal(await request(app(), `DPoP ${token}`, proof), 401, "invalid_token", description, dpopChallenge("invalid_token", description));
  });

  const refused: Array<[string, (token: string) => Promise<string>, string]> = [
    ["without ath", () => key.proof({ htm: "GET", htu: RESOURCE, nonce: null }), "the DPoP proof must carry ath, the hash of the access token"],
    ["with the hash of another token", () => proofFor("another-token"), "the DPoP proof's ath does not match the access token"],
    ["for another method", (t) => proofFor(t, { htm: "POST" }), "the DPoP proof's htm does not match the request method"],
    ["for another URL", (t) => proofFor(t, { htu: "https://rs.example/other" }), "the DPoP proof's htu does not match the request URI"],
    ["issued too long ago", (t) => proofFor(t, { iat: Math.floor(Date.now() / 1000) - 61 }), "the DPoP proof was issued too long ago"],
    ["issued in the future", (t) => proofFor(t, { iat: Math.floor(Date.now() / 1000) + 61 }), "the DPoP proof was issued in the future"],
    ["with typ JWT", (t) => proofFor(t, { header: { typ: "JWT" } }), "the DPoP proof must have typ dpop+jwt"],
    ["carrying the private key", (t) => proofFor(t, { header: { jwk: key.privateJwk } }), "the DPoP proof's jwk must be a public key"],
  ];
  for (const [name, make, description] of refused) {
    it(`refuses a proof ${name}`, async () => {
      const token = await boundToken();
      await expectRefusal(
        await request(app(), `DPoP ${token}`, await make(token)),
        401,
        "invalid_dpop_proof",
        description,
        dpopChallenge("invalid_dpop_proof", description),
      );
    });
  }

  it("compares htu with the resource's configured origin, not the Host the request names", async () => {
    const token = await boundToken();
    const proof = await proofFor(token, { htu: "https://evil.example/mcp" });
    const description = "the DPoP proof's htu does not match the request URI";
    const res = await request(app(), `DPoP ${token}`, proof, { url: "https://evil.example/mcp" });
    await expectRefusal(res, 401, "invalid_dpop_proof", description, dpopChallenge("invalid_dpop_proof", description));
  });

  it("uses the configured proof window and algorithms, and names them in challenges", async () => {
    const token = await boundToken();
    const narrow = app({ proofWindowSeconds: 5, algorithms: ["ES256"] });
    const description = "the DPoP proof was issued too long ago";
    const res = await request(narrow, `DPoP ${token}`, await proofFor(token, { iat: Math.floor(Date.now() / 1000) - 10 }));
    await expectRefusal(
      res,
      401,
      "invalid_dpop_proof",
      description,
      `DPoP resource_metadata="${META}", error="invalid_dpop_proof", error_description="${description}", algs="ES256"`,
    );
  });

  it("answers a missing scope of a DPoP-bound token with a DPoP insufficient_scope challenge", async () => {
    const token = await boundToken();
    const res = await request(app({}, ["mcp:read", "mcp:write"]), `DPoP ${token}`, await proofFor(token));
    const description = "this request needs scope mcp:write";
    await expectRefusal(
      res,
      403,
      "insufficient_scope",
      description,
      `DPoP resource_metadata="${META}", error="insufficient_scope", error_description="${description}", scope="mcp:read mcp:write", ${ALGS}`,
    );
  });
});

describe("resource-server kit: Bearer tokens beside DPoP", () => {
  it("offers both schemes when no credentials are sent (RFC 9449 §7.2 Figure 17)", async () => {
    const res = await request(app());
    expect(res.status).toBe(401);
    // Both name the scope to ask for first, which MCP clients use when they first authorize.
    expect(res.headers.get("www-authenticate")).toBe(
      `Bearer resource_metadata="${META}", scope="mcp:read", DPoP resource_metadata="${META}", scope="mcp:read", ${ALGS}`,
    );
  });

  it("refuses an unbound token sent with the DPoP scheme", async () => {
    const token = await sign();
    const description = "the access token is not DPoP-bound; send it with the Bearer scheme";
    await expectRefusal(
      await request(app(), `DPoP ${token}`, await proofFor(token)),
      401,
      "invalid_token",
      description,
      dpopChallenge("invalid_token", description),
    );
    expect((await request(app(), `Bearer ${token}`)).status).toBe(200);
  });

  it("refuses Bearer tokens altogether with requireDpop (dpop_bound_access_tokens_required)", async () => {
    const token = await sign();
    const description = "this resource accepts only DPoP-bound access tokens";
    const challenge = `Bearer resource_metadata="${META}", error="invalid_token", error_description="${description}", DPoP resource_metadata="${META}", ${ALGS}`;
    await expectRefusal(await request(app({ requireDpop: true }), `Bearer ${token}`), 401, "invalid_token", description, challenge);
    // Without credentials, only DPoP is offered.
    const bare = await request(app({ requireDpop: true }));
    expect(bare.headers.get("www-authenticate")).toBe(`DPoP resource_metadata="${META}", scope="mcp:read", ${ALGS}`);
    expect(await bare.json()).toEqual({ error: "invalid_token", error_description: "an access token is required" });
  });

  it("answers an invalid token in the scheme the client used", async () => {
    const description = "the access token is malformed";
    await expectRefusal(await request(app(), "DPoP not.a.jwt"), 401, "invalid_token", description, dpopChallenge("invalid_token", description));
    await expectRefusal(
      await request(app(), "Bearer not.a.jwt"),
      401,
      "invalid_token",
      description,
      `Bearer resource_metadata="${META}", error="invalid_token", error_description="${description}"`,
    );
  });
});

describe("resource-server kit against Latchkey's own DPoP-bound tokens", () => {
  it("verifies a real token and proof, and refuses the token as Bearer", async () => {
    const agent = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" },
      { Authorization: basic(agent.client_id, agent.client_secret as string), DPoP: await key.proof() },
    );
    const { access_token, token_type } = (await res.json()) as { access_token: string; token_type: string };
    expect(token_type).toBe("DPoP");
    const verify = createTokenVerifier({
      issuer: ISSUER,
      resource: MCP_RESOURCE,
      fetch: ((input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init))) as typeof fetch,
    });
    const rs = new Hono<{ Variables: TokenVariables }>();
    rs.use("/mcp", requireAccessToken({ verify, resource: MCP_RESOURCE, dpop: replayStore() }));
    rs.post("/mcp", (c) => c.json({ sub: c.var.accessToken.sub }));
    const proof = await key.proof({ htm: "POST", htu: MCP_RESOURCE, accessToken: access_token, nonce: null });
    const ok = await rs.request(MCP_RESOURCE, { method: "POST", headers: { Authorization: `DPoP ${access_token}`, DPoP: proof } });
    expect(await ok.json()).toEqual({ sub: agent.client_id });
    const bearer = await rs.request(MCP_RESOURCE, { method: "POST", headers: { Authorization: `Bearer ${access_token}` } });
    expect(bearer.status).toBe(401);
    expect(bearer.headers.get("www-authenticate")).toMatch(/^Bearer resource_metadata="[^"]+", error="invalid_token", .*, DPoP resource_metadata=/);
  });
});
