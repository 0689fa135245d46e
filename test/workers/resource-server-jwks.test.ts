import { Hono } from "hono";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createTokenVerifier, requireAccessToken, type TokenVariables } from "../../workers/resource-server";

/**
 * The resource-server kit's key set (`workers/resource-server/jwks-cache.ts`): when the issuer's JWKS
 * cannot be had, a token is answered 503 with Retry-After, never 401 invalid_token (which sends MCP
 * clients to refresh and re-authorize against the authorization server); a stale set keeps verifying;
 * a failed fetch is not retried within 30 s; concurrent requests share one fetch.
 */
const RESOURCE = "https://rs.example/mcp";
const UNAVAILABLE = { error: "temporarily_unavailable", error_description: "the authorization server's keys cannot be fetched" };

interface IssuerKey {
  key: CryptoKey;
  jwk: JWK;
}
let k1: IssuerKey;
let k2: IssuerKey;
let rsa: IssuerKey;

async function issuerKey(alg: "ES256" | "RS256", kid: string): Promise<IssuerKey> {
  const pair = await generateKeyPair(alg);
  return { key: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg } };
}

beforeAll(async () => {
  [k1, k2, rsa] = await Promise.all([issuerKey("ES256", "k1"), issuerKey("ES256", "k2"), issuerKey("RS256", "r1")]);
});

let warn: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  warn = vi.spyOn(console, "warn").mockImplementation(() => {});
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** An access token signed by `by`, naming `kid` (its own unless given; null for none). */
function sign(by: IssuerKey = k1, kid: string | null = by.jwk.kid as string) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: "https://as.example", aud: RESOURCE, sub: "usr_1", client_id: "c1", iat: now, exp: now + 300, jti: "j1", scope: "mcp:read" })
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", ...(kid === null ? {} : { kid }) })
    .sign(by.key);
}

/** Every way a JWKS fetch can fail, each a different error inside jose or fetch. */
const FAILURES: Record<string, () => Promise<Response>> = {
  "a network error": async () => {
    throw new TypeError("Network connection lost.");
  },
  "HTTP 500": async () => new Response("oops", { status: 500 }),
  "a redirect": async () => new Response(null, { status: 302, headers: { location: "https://elsewhere.example/jwks" } }),
  "invalid JSON": async () => new Response("<html>", { status: 200, headers: { "content-type": "application/json" } }),
  "JSON that is not a JWK Set": async () => Response.json({ keys: "none" }),
};

/** The issuer's JWKS endpoint: `answer` is what it does now (default: publish `keys`); every fetch is counted. */
function issuer(keys: JWK[] = [k1.jwk]) {
  const endpoint = {
    fetches: 0,
    answer: async (): Promise<Response> => Response.json({ keys }),
    publish(next: JWK[]) {
      endpoint.answer = async () => Response.json({ keys: next });
    },
    fail(how: () => Promise<Response> = FAILURES["a network error"] as () => Promise<Response>) {
      endpoint.answer = how;
    },
  };
  const fetch = (async () => {
    endpoint.fetches++;
    // A real fetch takes a while: long enough for concurrent requests to overlap it.
    await new Promise((r) => setTimeout(r, 5));
    return endpoint.answer();
  }) as unknown as typeof globalThis.fetch;
  const verify = createTokenVerifier({ issuer: "https://as.example", resource: RESOURCE, fetch });
  const app = new Hono<{ Variables: TokenVariables }>();
  app.use("/mcp", requireAccessToken({ verify, resource: RESOURCE, scopes: ["mcp:read"] }));
  app.get("/mcp", (c) => c.json({ sub: c.var.accessToken.sub }));
  const get = async (token: string | Promise<string>) => app.request(RESOURCE, { headers: { Authorization: `Bearer ${await token}` } });
  return Object.assign(endpoint, { get, verify });
}

/** The 503 the kit answers when it has no keys to check a token with: no challenge, no invalid_token. */
async function expectUnavailable(res: Response, retryAfter: string) {
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toBe(retryAfter);
  expect(res.headers.get("cache-control")).toBe("no-store");
  expect(res.headers.get("www-authenticate")).toBeNull();
  expect(await res.json()).toEqual(UNAVAILABLE);
}

const advance = (ms: number) => vi.setSystemTime(Date.now() + ms);

/** An issuer whose key set the verifier already holds (one fetch made), with the clock faked. */
async function warmIssuer() {
  vi.useFakeTimers({ toFake: ["Date"] });
  const as = issuer();
  expect((await as.get(sign())).status).toBe(200);
  return as;
}

/** 20 requests at once, the i-th with `token(i)`, all signed before the first is sent. */
async function twentyAtOnce(as: ReturnType<typeof issuer>, token: (i: number) => Promise<string>) {
  const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => token(i)));
  return Promise.all(tokens.map((t) => as.get(t)));
}

describe("resource-server kit: the issuer's JWKS", () => {
  for (const [name, how] of Object.entries(FAILURES)) {
    it(`answers 503 with Retry-After, not invalid_token, when the JWKS fetch fails with ${name}`, async () => {
      const as = issuer();
      as.fail(how);
      await expectUnavailable(await as.get(sign()), "30");
      expect(await as.verify(await sign())).toEqual({ ok: false, unavailable: true, description: UNAVAILABLE.error_description, retryAfterSeconds: 30 });
    });
  }

  it("answers 503 when the JWKS endpoint does not answer within 5 s, even through a fetch that ignores its signal", async () => {
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
    const as = issuer();
    as.fail(() => new Promise<Response>(() => {}));
    const token = await sign();
    const res = as.get(token);
    await vi.advanceTimersByTimeAsync(5_000);
    await expectUnavailable(await res, "30");
  });

  it("keeps verifying with the last good key set while the JWKS endpoint is down after its max age", async () => {
    const as = await warmIssuer();
    as.fail();
    advance(601_000);
    const stale = await as.get(sign());
    expect(stale.status).toBe(200);
    expect(await stale.json()).toEqual({ sub: "usr_1" });
    expect(as.fetches).toBe(2);
    // Within the failure cooldown the stale set is used without another fetch; after it, one more try.
    expect((await as.get(sign())).status).toBe(200);
    expect(as.fetches).toBe(2);
    advance(31_000);
    expect((await as.get(sign())).status).toBe(200);
    expect(as.fetches).toBe(3);
  });

  it("makes no fetch within 30 s of a failed one, and counts Retry-After down to it", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const as = issuer();
    as.fail(FAILURES["HTTP 500"]);
    await expectUnavailable(await as.get(sign()), "30");
    await expectUnavailable(await as.get(sign()), "30");
    advance(10_000);
    await expectUnavailable(await as.get(sign()), "20");
    expect(as.fetches).toBe(1);
    as.publish([k1.jwk]);
    advance(19_000);
    await expectUnavailable(await as.get(sign()), "1");
    expect(as.fetches).toBe(1);
    // Logged once per failed fetch, not once per refused request.
    expect(warn).toHaveBeenCalledTimes(1);
    advance(1_000);
    expect((await as.get(sign())).status).toBe(200);
    expect(as.fetches).toBe(2);
  });

  it("answers 503, not invalid_token, for an unknown kid it could not look for because the refetch failed", async () => {
    const as = await warmIssuer();
    as.fail();
    advance(31_000);
    // k2 may have been published since: without the current set the kit cannot tell.
    await expectUnavailable(await as.get(sign(k2)), "30");
    expect(as.fetches).toBe(2);
    // The known key still verifies from the set it has.
    expect((await as.get(sign())).status).toBe(200);
    expect(as.fetches).toBe(2);
  });

  it("fetches once for 20 concurrent requests on a cold verifier", async () => {
    const as = issuer();
    const answers = await twentyAtOnce(as, () => sign());
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(as.fetches).toBe(1);
  });

  it("fetches once for 20 concurrent tokens signed with a newly published key (kid k2)", async () => {
    const as = await warmIssuer();
    as.publish([k1.jwk, k2.jwk]);
    advance(31_000);
    const answers = await twentyAtOnce(as, () => sign(k2));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(as.fetches).toBe(2);
  });

  it("fetches once for 20 concurrent tokens with 20 different unknown kids, then not again within 30 s", async () => {
    const as = await warmIssuer();
    advance(31_000);
    const answers = await twentyAtOnce(as, (i) => sign(k1, `unknown-${i}`));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(401));
    expect(await answers[0]?.json()).toEqual({ error: "invalid_token", error_description: "the access token is signed with an unknown key" });
    expect(as.fetches).toBe(2);
    expect((await as.get(sign(k1, "unknown-20"))).status).toBe(401);
    expect(as.fetches).toBe(2);
  });

  it("never refetches for a token without kid, even when no key in the set fits it", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const as = issuer([rsa.jwk]);
    const res = await as.get(sign(k1, null));
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: "invalid_token", error_description: "the access token is signed with an unknown key" });
    advance(31_000);
    expect((await as.get(sign(k1, null))).status).toBe(401);
    expect(as.fetches).toBe(1);
  });
});
