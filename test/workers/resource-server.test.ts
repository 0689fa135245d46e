import { exports } from "cloudflare:workers";
import { Hono } from "hono";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { createTokenVerifier, metadataUrl, requireAccessToken, type TokenVariables } from "../../workers/resource-server";
import { basic, createClient, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

const RESOURCE = "https://rs.example/mcp";
const META = "https://rs.example/.well-known/oauth-protected-resource/mcp";
let key: CryptoKey;
let jwk: JWK;
let jwksFetches = 0;

/** A JWKS endpoint for the test issuer, counting how often it is fetched. */
const testFetch = (async () => {
  jwksFetches++;
  return Response.json({ keys: [jwk] });
}) as typeof fetch;

function sign(claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
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
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "k1", ...header })
    .sign(key);
}

function app(scopes: string[] = ["mcp:read"]) {
  const verify = createTokenVerifier({ issuer: "https://as.example", resource: RESOURCE, fetch: testFetch });
  const a = new Hono<{ Variables: TokenVariables }>();
  a.use("/mcp", requireAccessToken({ verify, resource: RESOURCE, scopes }));
  a.get("/mcp", (c) => c.json({ sub: c.var.accessToken.sub, scopes: c.var.accessToken.scopes }));
  return a;
}

function get(a: Hono<{ Variables: TokenVariables }>, token?: string, url = "https://rs.example/mcp") {
  return a.request(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
}

async function expectChallenge(res: Response, status: number, error: string, description: string, extra = "") {
  expect(res.status).toBe(status);
  expect(res.headers.get("www-authenticate")).toBe(`Bearer resource_metadata="${META}", error="${error}", error_description="${description}"${extra}`);
  expect(await res.json()).toEqual({ error, error_description: description });
}

beforeAll(async () => {
  const pair = await generateKeyPair("ES256");
  key = pair.privateKey;
  jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" };
});

describe("resource-server kit: token verification", () => {
  it("derives the RFC 9728 metadata URL by inserting the well-known segment", () => {
    expect(metadataUrl("https://rs.example/mcp")).toBe(META);
    expect(metadataUrl("https://rs.example/")).toBe("https://rs.example/.well-known/oauth-protected-resource");
  });

  it("accepts a valid token and exposes its claims", async () => {
    const res = await get(app(), await sign({}));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sub: "usr_1", scopes: ["mcp:read"] });
  });

  it("answers a request without a token with a bare challenge naming the metadata", async () => {
    const res = await get(app());
    expect(res.status).toBe(401);
    // RFC 9449 §7.2 (Figure 17): DPoP is offered beside Bearer, with the proof algorithms it accepts; both
    // name the scope to ask for first.
    expect(res.headers.get("www-authenticate")).toBe(
      `Bearer resource_metadata="${META}", scope="mcp:read", DPoP resource_metadata="${META}", scope="mcp:read", algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"`,
    );
  });

  it("answers another scheme like no token, and a malformed header with 400 invalid_request (RFC 6750 §3.1)", async () => {
    const bare = await get(app());
    const basic = await app().request("https://rs.example/mcp", { headers: { Authorization: "Basic dXNlcjpwYXNz" } });
    expect(basic.status).toBe(401);
    expect(basic.headers.get("www-authenticate")).toBe(bare.headers.get("www-authenticate"));
    const twoTokens = await app().request("https://rs.example/mcp", { headers: { Authorization: "Bearer a b" } });
    await expectChallenge(twoTokens, 400, "invalid_request", "the Authorization header must be the scheme, one space and the token");
  });

  it("refuses a token in the query string (RFC 6750 §2.3 is not supported)", async () => {
    const res = await get(app(), undefined, `https://rs.example/mcp?access_token=${await sign({})}`);
    expect(res.status).toBe(401);
  });

  const cases: Array<[string, () => Promise<string>, string]> = [
    ["expired", () => sign({ exp: Math.floor(Date.now() / 1000) - 60 }), "the access token has expired"],
    ["wrong audience", () => sign({ aud: "https://other.example/mcp" }), "the access token is for another resource"],
    ["wrong issuer", () => sign({ iss: "https://evil.example" }), "the access token is from an untrusted issuer"],
    ["wrong typ (an ID token)", () => sign({}, { typ: "JWT" }), "the token is not an access token"],
    ["unknown kid", () => sign({}, { kid: "other" }), "the access token is signed with an unknown key"],
    [
      "tampered signature",
      async () => {
        const t = await sign({});
        const [h, p, s] = t.split(".") as [string, string, string];
        return `${h}.${p}.${s.startsWith("A") ? `B${s.slice(1)}` : `A${s.slice(1)}`}`;
      },
      "the access token signature is invalid",
    ],
    [
      "tampered payload",
      async () => {
        const t = await sign({});
        const [h, , s] = t.split(".") as [string, string, string];
        const forged = btoa(JSON.stringify({ iss: "https://as.example", aud: RESOURCE, sub: "admin", client_id: "c1", iat: 1, exp: 9e9, jti: "x" })).replaceAll(
          "=",
          "",
        );
        return `${h}.${forged}.${s}`;
      },
      "the access token signature is invalid",
    ],
    ["garbage", async () => "not.a.jwt", "the access token is malformed"],
  ];
  for (const [name, token, description] of cases) {
    it(`refuses a token: ${name}`, async () => {
      await expectChallenge(await get(app(), await token()), 401, "invalid_token", description);
    });
  }

  it("answers a missing scope with 403 insufficient_scope and the scope to ask for", async () => {
    const res = await get(app(["mcp:read", "mcp:write"]), await sign({}));
    await expectChallenge(res, 403, "insufficient_scope", "this request needs scope mcp:write", ', scope="mcp:read mcp:write"');
  });

  it("fetches the JWKS once and refetches on an unknown kid at most every 30 seconds", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      const a = app();
      const before = jwksFetches;
      await get(a, await sign({}));
      await get(a, await sign({}));
      expect(jwksFetches - before).toBe(1);
      // Within the cooldown an unknown kid does not cause a fetch (no amplification by bad tokens).
      await get(a, await sign({}, { kid: "unknown-1" }));
      expect(jwksFetches - before).toBe(1);
      vi.setSystemTime(Date.now() + 31_000);
      await get(a, await sign({}, { kid: "unknown-2" }));
      await get(a, await sign({}, { kid: "unknown-3" }));
      expect(jwksFetches - before).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("resource-server kit against Latchkey's own tokens", () => {
  it("verifies a real access token through the issuer's JWKS", async () => {
    const agent = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    const { access_token } = (await res.json()) as { access_token: string };
    const verify = createTokenVerifier({
      issuer: ISSUER,
      resource: MCP_RESOURCE,
      fetch: ((input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init))) as typeof fetch,
    });
    const result = await verify(access_token);
    expect(result).toMatchObject({ ok: true, token: { sub: agent.client_id, client_id: agent.client_id, scopes: ["mcp:read"], aud: MCP_RESOURCE } });
    expect(await verify(access_token.slice(0, -2))).toEqual({ ok: false, description: "the access token signature is invalid" });
  });
});
