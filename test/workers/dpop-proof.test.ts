import { env } from "cloudflare:workers";
import { decodeJwt, exportJWK, generateSecret, SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../workers/app";
import { now, setClock } from "../../workers/clock";
import { currentNonce, NONCE_PERIOD, nonceIsFresh } from "../../workers/dpop/nonce";
import { DpopKey, serverNonce, unsigned } from "./dpop";
import { basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

/**
 * DPoP proofs at the token endpoint (RFC 9449 §4.3, §5, §8), driven through client_credentials: every
 * way a proof is refused, with the exact status and body, and the nonce round trip.
 */
let agent: CreatedClient;
let bound: CreatedClient;
let key: DpopKey;

beforeAll(async () => {
  agent = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
  bound = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic", dpop_bound_access_tokens: true });
  key = await DpopKey.generate();
});

afterEach(() => setClock());

function tokenRequest(proof: string | string[] | undefined, client = agent): Promise<Response> {
  const headers = new Headers({ "Content-Type": "application/x-www-form-urlencoded", Authorization: basic(client.client_id, client.client_secret as string) });
  for (const p of [proof ?? []].flat()) headers.append("DPoP", p);
  return call("/token", {
    method: "POST",
    headers,
    body: new URLSearchParams({ grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" }),
  });
}

/** A refused proof: 400 invalid_dpop_proof with `description`, and the next nonce beside it. */
async function expectRefused(res: Response, description: string): Promise<void> {
  expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
  await expectError(res, 400, "invalid_dpop_proof", description);
}

describe("DPoP at the token endpoint: a valid proof (RFC 9449 §5)", () => {
  it("binds the access token to the proof's key: token_type DPoP, cnf.jkt, and the next nonce", async () => {
    const res = await tokenRequest(await key.proof());
    expect(res.status).toBe(200);
    expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, string>;
    expect(body).toEqual({ access_token: expect.any(String), token_type: "DPoP", expires_in: 600, scope: "mcp:read" });
    expect(decodeJwt(body.access_token as string)).toMatchObject({ cnf: { jkt: key.jkt }, sub: agent.client_id, aud: MCP_RESOURCE });

    // RFC 9449 §6.2: introspection conveys cnf.jkt, and token_type DPoP.
    const introspected = await postForm(
      "/introspect",
      { token: body.access_token as string },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    expect(await introspected.json()).toMatchObject({ active: true, token_type: "DPoP", cnf: { jkt: key.jkt } });
  });

  it("issues a Bearer token without a DPoP header, and sends no nonce", async () => {
    const res = await tokenRequest(undefined);
    expect(res.headers.get("dpop-nonce")).toBeNull();
    const body = (await res.json()) as Record<string, string>;
    expect(body.token_type).toBe("Bearer");
    expect(decodeJwt(body.access_token as string).cnf).toBeUndefined();
  });

  for (const alg of ["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"]) {
    it(`accepts a proof signed with ${alg}`, async () => {
      const k = await DpopKey.generate(alg);
      const res = await tokenRequest(await k.proof());
      expect(res.status).toBe(200);
      expect(decodeJwt(((await res.json()) as { access_token: string }).access_token).cnf).toEqual({ jkt: k.jkt });
    });
  }

  it("normalizes htu and ignores its query and fragment (RFC 9449 §4.3)", async () => {
    expect((await tokenRequest(await key.proof({ htu: "HTTP://LOCALHOST:8787/token" }))).status).toBe(200);
    expect((await tokenRequest(await key.proof({ htu: `${ISSUER}/token?x=1#y` }))).status).toBe(200);
  });

  it("accepts iat up to the window either side of now", async () => {
    // The clock stands still, so a second ticking between signing and checking cannot move the boundary.
    const frozen = Date.now();
    setClock(() => frozen);
    expect((await tokenRequest(await key.proof({ iat: now() - 60 }))).status).toBe(200);
    expect((await tokenRequest(await key.proof({ iat: now() + 60 }))).status).toBe(200);
  });
});

describe("DPoP at the token endpoint: nonces (RFC 9449 §8)", () => {
  it("answers a proof without a nonce with use_dpop_nonce and a DPoP-Nonce to retry with", async () => {
    const res = await tokenRequest(await key.proof({ nonce: null }));
    const nonce = res.headers.get("dpop-nonce") as string;
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await expectError(res, 400, "use_dpop_nonce", "the authorization server requires a nonce in the DPoP proof");
    expect((await tokenRequest(await key.proof({ nonce }))).status).toBe(200);
  });

  it("refuses a nonce it did not hand out, and one older than the previous period", async () => {
    await expectError(
      await tokenRequest(await key.proof({ nonce: "made-up" })),
      400,
      "use_dpop_nonce",
      "the DPoP proof's nonce is not a recent one; use the one in the DPoP-Nonce header",
    );
    const stale = await currentNonce(env.SESSION_SECRET, now() - 2 * NONCE_PERIOD);
    const res = await tokenRequest(await key.proof({ nonce: stale }));
    expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
    await expectError(res, 400, "use_dpop_nonce", "the DPoP proof's nonce is not a recent one; use the one in the DPoP-Nonce header");
  });

  it("accepts the previous period's nonce, so a nonce lives one to two periods", async () => {
    const t = now();
    const previous = await currentNonce(env.SESSION_SECRET, t - NONCE_PERIOD);
    expect(await nonceIsFresh(env.SESSION_SECRET, previous, t)).toBe(true);
    expect(await nonceIsFresh(env.SESSION_SECRET, await currentNonce(env.SESSION_SECRET, t - 2 * NONCE_PERIOD), t)).toBe(false);
    expect(await nonceIsFresh("another-secret-of-at-least-32-characters!", await currentNonce(env.SESSION_SECRET, t), t)).toBe(false);
    expect((await tokenRequest(await key.proof({ nonce: previous }))).status).toBe(200);
  });

  it("with DPOP_NONCE=off asks for no nonce and hands none out", async () => {
    const app = buildApp();
    const offEnv = { ...env, DPOP_NONCE: "off" } as Env;
    const headers = { "Content-Type": "application/x-www-form-urlencoded", Authorization: basic(agent.client_id, agent.client_secret as string) };
    const body = () => new URLSearchParams({ grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" });
    const res = await app.fetch(
      new Request(`${ISSUER}/token`, { method: "POST", headers: { ...headers, DPoP: await key.proof({ nonce: null }) }, body: body() }),
      offEnv,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("dpop-nonce")).toBeNull();
    expect(((await res.json()) as { token_type: string }).token_type).toBe("DPoP");
  });
});

describe("DPoP at the token endpoint: refused proofs (RFC 9449 §4.3)", () => {
  it("refuses a proof whose typ is not dpop+jwt (§11.5)", async () => {
    await expectRefused(await tokenRequest(await key.proof({ header: { typ: "JWT" } })), "the DPoP proof must have typ dpop+jwt");
  });

  it("refuses alg none and symmetric algorithms (§11.6)", async () => {
    const claims = { jti: crypto.randomUUID(), htm: "POST", htu: `${ISSUER}/token`, iat: now(), nonce: await serverNonce() };
    const none = unsigned({ typ: "dpop+jwt", alg: "none", jwk: key.jwk }, claims);
    const algs = "the DPoP proof must be signed with one of ES256 ES384 EdDSA Ed25519 RS256 PS256";
    await expectRefused(await tokenRequest(none), algs);
    const secret = (await generateSecret("HS256", { extractable: true })) as CryptoKey;
    const hs256 = await new SignJWT(claims).setProtectedHeader({ typ: "dpop+jwt", alg: "HS256", jwk: await exportJWK(secret) }).sign(secret);
    await expectRefused(await tokenRequest(hs256), algs);
    // An asymmetric algorithm outside the list (ES512) is refused the same way.
    const es512 = await DpopKey.generate("ES512");
    await expectRefused(await tokenRequest(await es512.proof()), algs);
  });

  it("refuses a jwk that carries the private key, and a proof without a jwk", async () => {
    await expectRefused(await tokenRequest(await key.proof({ header: { jwk: key.privateJwk } })), "the DPoP proof's jwk must be a public key");
    await expectRefused(await tokenRequest(await key.proof({ header: { jwk: undefined } })), "the DPoP proof must carry its public key as jwk");
  });

  it("refuses a proof not signed by its jwk's key, and a tampered one", async () => {
    const other = await DpopKey.generate();
    await expectRefused(await tokenRequest(await key.proof({ header: { jwk: other.jwk } })), "the DPoP proof signature is invalid");
    const [h, , s] = (await key.proof()).split(".") as [string, string, string];
    const forged = btoa(JSON.stringify({ jti: "x", htm: "POST", htu: `${ISSUER}/token`, iat: now(), nonce: await serverNonce() })).replaceAll("=", "");
    await expectRefused(await tokenRequest(`${h}.${forged}.${s}`), "the DPoP proof signature is invalid");
  });

  it("refuses a proof for another method or another URI (htm, htu)", async () => {
    await expectRefused(await tokenRequest(await key.proof({ htm: "GET" })), "the DPoP proof's htm does not match the request method");
    await expectRefused(await tokenRequest(await key.proof({ htm: "post" })), "the DPoP proof's htm does not match the request method");
    await expectRefused(await tokenRequest(await key.proof({ htu: `${ISSUER}/introspect` })), "the DPoP proof's htu does not match the request URI");
    await expectRefused(await tokenRequest(await key.proof({ htu: "https://localhost:8787/token" })), "the DPoP proof's htu does not match the request URI");
    await expectRefused(await tokenRequest(await key.proof({ htu: "not a url" })), "the DPoP proof's htu does not match the request URI");
  });

  it("compares htu with the configured issuer, not the Host the request names", async () => {
    const proof = await key.proof({ htu: "http://evil.example/token" });
    const res = await requestAtHost("http://evil.example/token", proof);
    await expectRefused(res, "the DPoP proof's htu does not match the request URI");
  });

  it("refuses iat outside the window (§11.1)", async () => {
    // The clock stands still, so a second ticking between signing and checking cannot move the boundary.
    const frozen = Date.now();
    setClock(() => frozen);
    try {
      await expectRefused(await tokenRequest(await key.proof({ iat: now() - 61 })), "the DPoP proof was issued too long ago");
      await expectRefused(await tokenRequest(await key.proof({ iat: now() + 61 })), "the DPoP proof was issued in the future");
    } finally {
      setClock();
    }
  });

  it("refuses a replayed proof (single-use jti, §11.1)", async () => {
    const proof = await key.proof();
    expect((await tokenRequest(proof)).status).toBe(200);
    await expectRefused(await tokenRequest(proof), "the DPoP proof was already used");
    // The same jti in a fresh proof is the same proof identifier for this key.
    const jti = crypto.randomUUID();
    expect((await tokenRequest(await key.proof({ jti }))).status).toBe(200);
    await expectRefused(await tokenRequest(await key.proof({ jti })), "the DPoP proof was already used");
  });

  it("refuses a proof lacking jti, htm, htu or iat", async () => {
    await expectRefused(await tokenRequest(await key.proof({ claims: { jti: undefined } })), "the DPoP proof must carry a jti of 1 to 256 characters");
    await expectRefused(await tokenRequest(await key.proof({ jti: "j".repeat(257) })), "the DPoP proof must carry a jti of 1 to 256 characters");
    await expectRefused(await tokenRequest(await key.proof({ claims: { htm: undefined } })), "the DPoP proof must carry htm");
    await expectRefused(await tokenRequest(await key.proof({ claims: { htu: undefined } })), "the DPoP proof must carry htu");
    await expectRefused(await tokenRequest(await key.proof({ claims: { iat: undefined } })), "the DPoP proof must carry iat");
  });

  it("refuses claims of the wrong type (schemas/dpop.ts)", async () => {
    await expectRefused(await tokenRequest(await key.proof({ claims: { jti: 42 } })), "the DPoP proof must carry a jti of 1 to 256 characters");
    await expectRefused(await tokenRequest(await key.proof({ claims: { htm: ["POST"] } })), "the DPoP proof must carry htm");
    // jose checks iat's type first, as a registered claim.
    await expectRefused(await tokenRequest(await key.proof({ claims: { iat: String(now()) } })), "the DPoP proof's iat is invalid");
    await expectRefused(await tokenRequest(await key.proof({ claims: { ath: 7 } })), "the DPoP proof's ath must be a string");
    await expectRefused(await tokenRequest(await key.proof({ nonce: "" })), "the DPoP proof's nonce must be a non-empty string");
  });

  it("refuses two DPoP headers and a header that is not a JWS", async () => {
    await expectRefused(await tokenRequest([await key.proof(), await key.proof()]), "more than one DPoP header was sent");
    await expectRefused(await tokenRequest("not-a-jws"), "the DPoP header is not a compact JWS");
    await expectRefused(await tokenRequest("e30.e30.e30"), "the DPoP proof must have typ dpop+jwt");
  });

  it("issues nothing when the proof is refused", async () => {
    const res = await tokenRequest(await key.proof({ htm: "GET" }));
    expect(res.status).toBe(400);
    expect(Object.keys((await res.json()) as object).sort()).toEqual(["error", "error_description"]);
  });
});

describe("DPoP and browser-based clients (RFC 9449 §7.1, §8)", () => {
  it("exposes DPoP-Nonce and WWW-Authenticate to cross-origin callers, and lets them send DPoP", async () => {
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" },
      { Authorization: basic(agent.client_id, agent.client_secret as string), Origin: "https://spa.example", DPoP: await key.proof({ nonce: null }) },
    );
    expect(res.headers.get("access-control-expose-headers")).toBe("WWW-Authenticate,DPoP-Nonce,OAuth-Client-Attestation-Challenge");
    expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
    const preflight = await call("/token", {
      method: "OPTIONS",
      headers: { Origin: "https://spa.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "dpop" },
    });
    expect(preflight.headers.get("access-control-allow-headers")).toMatch(/\bDPoP\b/);
  });
});

describe("dpop_bound_access_tokens (RFC 9449 §5.2)", () => {
  it("refuses a token request without a DPoP proof from a client registered with it", async () => {
    const res = await tokenRequest(undefined, bound);
    expect(res.headers.get("dpop-nonce")).toBeNull();
    await expectError(res, 400, "invalid_dpop_proof", "this client is registered with dpop_bound_access_tokens and must send a DPoP proof");
    const ok = await tokenRequest(await key.proof(), bound);
    expect(((await ok.json()) as { token_type: string }).token_type).toBe("DPoP");
  });

  it("is part of the client's registered metadata", async () => {
    const registered = await (await call(`/admin/clients/${bound.client_id}`, { headers: { Authorization: "Bearer dev-admin-token" } })).json();
    expect(registered).toMatchObject({ dpop_bound_access_tokens: true });
  });
});

/** A token request addressed to another host name than the issuer's (as a Host header would name it). */
async function requestAtHost(url: string, proof: string): Promise<Response> {
  return buildApp().fetch(
    new Request(url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Authorization: basic(agent.client_id, agent.client_secret as string), DPoP: proof },
      body: new URLSearchParams({ grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" }),
    }),
    env,
  );
}
