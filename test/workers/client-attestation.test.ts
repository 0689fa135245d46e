import { decodeJwt } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { now, setClock } from "../../workers/clock";
import { attestationHeaders, Instance, serverChallenge, TestAttester } from "./attestation";
import { codeWithVerifier, obtainCode, pkce } from "./browser";
import { DpopKey, serverNonce } from "./dpop";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, MCP_RESOURCE, postForm } from "./helpers";

/**
 * Attestation-based client authentication (draft-ietf-oauth-attestation-based-client-auth-11): the
 * PoP JWT mode and DPoP combined mode at /token and /par, every check of §6.1, challenges (§8),
 * metadata (§10.1) and refresh tokens bound to the Client Instance Key (§11).
 */
const REDIRECT = "https://agent.example/callback";
let agent: CreatedClient;
let combined: CreatedClient;
let stranger: CreatedClient;
let attester: TestAttester;
let instance: Instance;

beforeAll(async () => {
  agent = await createClient({
    client_name: "Attested agent",
    grant_types: ["client_credentials", "authorization_code", "refresh_token"],
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: "attest_jwt_client_auth",
  });
  combined = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "attest_jwt_client_auth_dpop" });
  stranger = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "attest_jwt_client_auth" });
  attester = await TestAttester.generate("https://attester.example");
  await attester.register([agent.client_id, combined.client_id]);
  instance = await Instance.generate();
});

async function token(headers: Record<string, string>, extra: Record<string, string> = {}): Promise<Response> {
  return postForm("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE, ...extra }, headers);
}

async function valid(clientId = agent.client_id, claims: Record<string, unknown> = {}) {
  return attestationHeaders(await attester.attest(clientId, instance, { claims }), await instance.pop());
}

describe("metadata and the challenge endpoint (§8.1, §10.1)", () => {
  it("publishes the attestation metadata and methods", async () => {
    const meta = (await (await call("/.well-known/oauth-authorization-server")).json()) as Record<string, unknown>;
    expect(meta).toMatchObject({
      challenge_endpoint: "http://localhost:8787/challenge",
      client_attestation_pop_methods_supported: ["attestation_pop_jwt", "dpop_combined", "none"],
    });
    expect(meta.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(["attest_jwt_client_auth", "attest_jwt_client_auth_dpop"]));
    expect(meta.client_attestation_signing_alg_values_supported).toContain("ES256");
    expect(meta.client_attestation_pop_signing_alg_values_supported).not.toContain("HS256");
  });

  it("hands out a challenge on POST, no-store, with a DPoP nonce; 405 otherwise", async () => {
    const res = await call("/challenge", { method: "POST" });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
    expect(await res.json()).toEqual({ attestation_challenge: await serverChallenge() });
    expect((await call("/challenge")).status).toBe(405);
  });
});

describe("PoP JWT mode (attest_jwt_client_auth)", () => {
  it("issues a token and answers with the next challenge", async () => {
    const res = await token(await valid());
    const body = (await res.json()) as { access_token: string; token_type: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.token_type).toBe("Bearer");
    expect(res.headers.get("oauth-client-attestation-challenge")).toBe(await serverChallenge());
    expect(decodeJwt(body.access_token)).toMatchObject({ sub: agent.client_id, client_id: agent.client_id });
  });

  it("refuses an expired attestation with use_fresh_attestation", async () => {
    const old = await attester.attest(agent.client_id, instance, { claims: { iat: now() - 7200, exp: now() - 3600 } });
    await expectError(
      await token(attestationHeaders(old, await instance.pop())),
      400,
      "use_fresh_attestation",
      "the client attestation has expired; obtain a fresh one from the attester",
    );
  });

  it("refuses an attestation older than CLIENT_ATTESTATION_MAX_AGE with use_fresh_attestation", async () => {
    const stale = await attester.attest(agent.client_id, instance, { claims: { iat: now() - 90_000 } });
    await expectError(
      await token(attestationHeaders(stale, await instance.pop())),
      400,
      "use_fresh_attestation",
      "the client attestation was issued more than 86400 seconds ago",
    );
  });

  it("checks the PoP before the attestation's contents: a PoP by another key is invalid_client_attestation, even with a stale eat_nonce", async () => {
    const other = await Instance.generate();
    const attestation = await attester.attest(agent.client_id, instance, { claims: { eat_nonce: "b2xkLW5vbmNl" } });
    const res = await token(attestationHeaders(attestation, await other.pop()));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_client_attestation");
  });

  it("refuses an attestation without iat that is valid for longer than CLIENT_ATTESTATION_MAX_AGE", async () => {
    const lasting = await attester.attest(agent.client_id, instance, { claims: { iat: undefined, exp: now() + 10 * 365 * 86_400 } });
    await expectError(
      await token(attestationHeaders(lasting, await instance.pop())),
      400,
      "use_fresh_attestation",
      "the client attestation has no iat and is valid for more than 86400 seconds",
    );
    const short = await attester.attest(agent.client_id, instance, { claims: { iat: undefined, exp: now() + 600 } });
    expect((await token(attestationHeaders(short, await instance.pop()))).status).toBe(200);
  });

  it("takes what conforming attesters and instances send: swversion as RFC 9711's array, typ with its media-type prefix, a PoP's nbf beside its iat", async () => {
    const attested = await attester.attest(agent.client_id, instance, {
      claims: { swversion: ["2.10.0", 1] },
      header: { typ: "application/oauth-client-attestation+jwt" },
    });
    const soon = now() + 10;
    const res = await token(attestationHeaders(attested, await instance.pop({ claims: { iat: soon, nbf: soon } })));
    const body = (await res.json()) as { access_token: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token).attested).toMatchObject({ swversion: "2.10.0" });
  });

  it("refuses an attestation from an untrusted attester, or signed by another key", async () => {
    const rogue = await TestAttester.generate("https://rogue.example");
    const untrusted = "the client attestation is not from an attester trusted for this client";
    await expectError(
      await token(attestationHeaders(await rogue.attest(agent.client_id, instance), await instance.pop())),
      401,
      "invalid_client_attestation",
      untrusted,
    );
    const forged = await TestAttester.generate(attester.issuer);
    await expectError(
      await token(attestationHeaders(await forged.attest(agent.client_id, instance), await instance.pop())),
      401,
      "invalid_client_attestation",
      "the client attestation's signature does not verify with its attester's keys",
    );
  });

  it("refuses an attestation for a client the attester may not vouch for, or for another client", async () => {
    await expectError(
      await token(await valid(stranger.client_id)),
      401,
      "invalid_client_attestation",
      "the client attestation is not from an attester trusted for this client",
    );
    await expectError(
      await token(await valid(), { client_id: combined.client_id }),
      400,
      "invalid_request",
      "client_id does not match the client attestation's sub",
    );
    // combined is trusted, but registered for DPoP combined mode, not the PoP JWT.
    await expectError(await token(await valid(combined.client_id)), 401, "invalid_client", "client authentication failed");
  });

  it("refuses a replayed PoP", async () => {
    const headers = await valid();
    expect((await token(headers)).status).toBe(200);
    await expectError(await token(headers), 401, "invalid_client_attestation", "the client attestation PoP was already used (its jti is single-use)");
  });

  it("refuses a missing PoP, a PoP by another key, for another audience, or mistyped", async () => {
    const attestation = await attester.attest(agent.client_id, instance);
    await expectError(
      await token(attestationHeaders(attestation)),
      401,
      "invalid_client_attestation",
      "the OAuth-Client-Attestation-PoP header is missing (or, in DPoP combined mode, the DPoP proof)",
    );
    const other = await Instance.generate();
    const cases: Array<[string, string]> = [
      [await instance.pop({ signWith: other.privateKey }), "the client attestation PoP is not signed by the client instance key in the attestation's cnf"],
      [await instance.pop({ claims: { aud: "https://elsewhere.example" } }), "the client attestation PoP's aud must be this authorization server's issuer"],
      [await instance.pop({ header: { typ: "JWT" } }), "the client attestation PoP's typ must be oauth-client-attestation-pop+jwt"],
      [await instance.pop({ claims: { iat: now() - 600 } }), "the client attestation PoP was issued too long ago"],
    ];
    for (const [pop, description] of cases)
      await expectError(await token(attestationHeaders(attestation, pop)), 401, "invalid_client_attestation", description);
  });

  it("asks for a challenge when the PoP has none or a stale one, with the challenge header", async () => {
    const attestation = await attester.attest(agent.client_id, instance);
    for (const [challenge, description] of [
      [null, "the authorization server requires a challenge in the client attestation PoP"],
      ["c3RhbGU", "the client attestation PoP's challenge is not a recent one; use the one in OAuth-Client-Attestation-Challenge"],
    ] as const) {
      const res = await token(attestationHeaders(attestation, await instance.pop({ challenge })));
      expect(res.headers.get("oauth-client-attestation-challenge")).toBe(await serverChallenge());
      await expectError(res, 400, "use_attestation_challenge", description);
    }
  });

  it("refuses malformed, doubled, mistyped or unsigned attestations, and a second auth method", async () => {
    const attestation = await attester.attest(agent.client_id, instance);
    const pop = await instance.pop();
    const doubled = await token({ "OAuth-Client-Attestation": `${attestation}, ${attestation}`, "OAuth-Client-Attestation-PoP": pop });
    // §8.2: even a request refused for its headers gets the next challenge.
    expect(doubled.headers.get("oauth-client-attestation-challenge")).toBe(await serverChallenge());
    await expectError(doubled, 401, "invalid_client_attestation", "more than one OAuth-Client-Attestation header was sent");
    const jwtTyp = await attester.attest(agent.client_id, instance, { header: { typ: "JWT" } });
    await expectError(
      await token(attestationHeaders(jwtTyp, pop)),
      401,
      "invalid_client_attestation",
      "the client attestation's typ must be oauth-client-attestation+jwt",
    );
    const privateCnf = await attester.attest(agent.client_id, instance, { claims: { cnf: { jwk: { ...instance.jwk, d: "AAAA" } } } });
    await expectError(
      await token(attestationHeaders(privateCnf, await instance.pop())),
      401,
      "invalid_client_attestation",
      "the client attestation's cnf.jwk is invalid: must not contain private key material",
    );
    await expectError(
      await token({ ...attestationHeaders(attestation, pop), Authorization: basic("x", "y") }),
      400,
      "invalid_request",
      "more than one client authentication method was used",
    );
  });

  it("authenticates at /par too", async () => {
    const p = await pkce();
    const res = await postForm(
      "/par",
      { response_type: "code", redirect_uri: REDIRECT, code_challenge: p.challenge, code_challenge_method: "S256", resource: MCP_RESOURCE, scope: "mcp:read" },
      await valid(),
    );
    expect(res.status, await res.clone().text()).toBe(201);
  });
});

describe("DPoP combined mode (attest_jwt_client_auth_dpop, §6.2)", () => {
  it("accepts a DPoP proof by the attested key and binds the token to it", async () => {
    const key = await DpopKey.generate();
    const inst = await Instance.generate();
    const attestation = await attester.attest(combined.client_id, { jwk: key.jwk } as Instance);
    const res = await token({ ...attestationHeaders(attestation), DPoP: await key.proof() });
    const body = (await res.json()) as { access_token: string; token_type: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.token_type).toBe("DPoP");
    expect(decodeJwt(body.access_token).cnf).toEqual({ jkt: key.jkt });
    const other = await attester.attest(combined.client_id, inst);
    await expectError(
      await token({ ...attestationHeaders(other), DPoP: await key.proof() }),
      401,
      "invalid_client_attestation",
      "the DPoP proof is not signed by the client instance key in the attestation's cnf",
    );
  });

  it("answers a malformed DPoP header in combined mode as a DPoP problem (RFC 9449 §4.3)", async () => {
    const key = await DpopKey.generate();
    const attestation = await attester.attest(combined.client_id, { jwk: key.jwk } as Instance);
    const proof = await key.proof();
    await expectError(
      await token({ ...attestationHeaders(attestation), DPoP: `${proof}, ${proof}` }),
      400,
      "invalid_dpop_proof",
      "more than one DPoP header was sent",
    );
  });

  it("gives the next challenge also to a request refused before client authentication (a DPoP nonce asked for first)", async () => {
    const key = await DpopKey.generate();
    const attestation = await attester.attest(combined.client_id, { jwk: key.jwk } as Instance);
    const res = await token({ ...attestationHeaders(attestation), DPoP: await key.proof({ nonce: null }) });
    expect(res.headers.get("oauth-client-attestation-challenge")).toBe(await serverChallenge());
    await expectError(res, 400, "use_dpop_nonce", "the authorization server requires a nonce in the DPoP proof");
  });

  it("asks for a DPoP nonce for freshness", async () => {
    const key = await DpopKey.generate();
    const attestation = await attester.attest(combined.client_id, { jwk: key.jwk } as Instance);
    const res = await token({ ...attestationHeaders(attestation), DPoP: await key.proof({ nonce: null }) });
    expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
    await expectError(res, 400, "use_dpop_nonce", "the authorization server requires a nonce in the DPoP proof");
  });
});

describe("refresh tokens bound to the Client Instance Key (§11)", () => {
  it("refreshes only with an attestation of the same instance key", async () => {
    const p = await pkce();
    const { code } = await obtainCode(
      {
        response_type: "code",
        client_id: agent.client_id,
        redirect_uri: REDIRECT,
        code_challenge: p.challenge,
        code_challenge_method: "S256",
        resource: MCP_RESOURCE,
        scope: "mcp:read",
      },
      REDIRECT,
    );
    const redeemed = await postForm("/token", { grant_type: "authorization_code", code, code_verifier: p.verifier }, await valid());
    const tokens = (await redeemed.json()) as { refresh_token: string };
    expect(redeemed.status, JSON.stringify(tokens)).toBe(200);
    const other = await Instance.generate();
    const foreign = attestationHeaders(await attester.attest(agent.client_id, other), await other.pop());
    await expectError(
      await postForm("/token", { grant_type: "refresh_token", refresh_token: tokens.refresh_token }, foreign),
      400,
      "invalid_grant",
      "the refresh token is bound to the client instance key of the attestation it was issued under",
    );
    const refreshed = await postForm("/token", { grant_type: "refresh_token", refresh_token: tokens.refresh_token }, await valid());
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
  });
});

describe("a refusal by the policy of the grant's own resource spends nothing", () => {
  // The grant's one resource requires an attested model provider; the requests below do not name it, so
  // the policy is known only once the grant is read, after the code is redeemed or the token rotated.
  const LEDGER = "https://ledger.example/api";
  const REFUSED = "the client attestation does not satisfy the policy for this request: model_provider missing";
  const good = () => valid(agent.client_id, { model_provider: "anthropic" });
  afterEach(() => setClock());

  beforeAll(async () => {
    const created = await adminCall("POST", "/resources", { resource: LEDGER, name: "Ledger", scopes_supported: ["ledger:read"] });
    const { id } = (await created.json()) as { id: string };
    expect((await adminCall("PUT", `/policies/resources/${id}`, { require_attestation: true, model_providers: ["anthropic"] })).status).toBe(200);
  });

  it("leaves the code unredeemed and the refresh token current, so a request with a good attestation succeeds", async () => {
    const { code, verifier } = await codeWithVerifier(agent.client_id, REDIRECT, LEDGER, "ledger:read");
    const redeem = async (headers: Record<string, string>) => postForm("/token", { grant_type: "authorization_code", code, code_verifier: verifier }, headers);
    await expectError(await redeem(await valid()), 403, "access_denied", REFUSED);
    const redeemed = await redeem(await good());
    const tokens = (await redeemed.json()) as { refresh_token: string };
    expect(redeemed.status, JSON.stringify(tokens)).toBe(200);

    const refresh = async (headers: Record<string, string>) =>
      postForm("/token", { grant_type: "refresh_token", refresh_token: tokens.refresh_token }, headers);
    await expectError(await refresh(await valid()), 403, "access_denied", REFUSED);
    // Past the reuse window a rotated token would count as reused and revoke the grant: this one was never rotated.
    const later = (now() + 120) * 1000;
    setClock(() => later);
    const refreshed = await refresh(await good());
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
    expect(((await refreshed.json()) as { refresh_token: string }).refresh_token).not.toBe(tokens.refresh_token);
  });
});
