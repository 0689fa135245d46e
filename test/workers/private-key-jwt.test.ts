import { base64url, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { clearClientKeys } from "../../workers/clients/client-keys";
import { JWT_BEARER } from "../../workers/clients/private-key-jwt";
import { setOutboundTransport } from "../../workers/clients/safe-fetch";
import { DpopKey } from "./dpop";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

/**
 * private_key_jwt (RFC 7523 §2.2 and §3 as updated by RFC 10070) for registered clients: keys by value
 * (`jwks`) and by reference (`jwks_uri`, fetched through the stubbed outbound transport).
 */
let key: CryptoKey;
let publicJwk: JWK;
let otherKey: CryptoKey;
let agent: CreatedClient;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256");
  key = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  otherKey = (await generateKeyPair("ES256")).privateKey;
  agent = await createClient({
    client_name: "Keyed agent",
    grant_types: ["client_credentials"],
    token_endpoint_auth_method: "private_key_jwt",
    jwks: { keys: [publicJwk] },
    scope: "mcp:read",
  });
});

afterEach(() => {
  setOutboundTransport();
  clearClientKeys();
});

interface AssertionOptions {
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
  signWith?: CryptoKey;
  clientId?: string;
}

/** A client assertion for `clientId`, valid unless the options spoil it. */
function assertion({ claims = {}, header = {}, signWith = key, clientId = agent.client_id }: AssertionOptions = {}): Promise<string> {
  const t = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: clientId, sub: clientId, aud: ISSUER, iat: t, exp: t + 60, jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: "ES256", kid: "k1", typ: "client-authentication+jwt", ...header })
    .sign(signWith);
}

function token(clientAssertion: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<Response> {
  return postForm(
    "/token",
    {
      grant_type: "client_credentials",
      resource: MCP_RESOURCE,
      client_assertion_type: JWT_BEARER,
      client_assertion: clientAssertion,
      ...extra,
    },
    headers,
  );
}

/** An unsigned JWT (`alg: none`), built by hand since jose will not make one. */
function unsigned(claims: Record<string, unknown>): string {
  const part = (o: unknown) => base64url.encode(JSON.stringify(o));
  return `${part({ alg: "none", typ: "client-authentication+jwt" })}.${part(claims)}.`;
}

describe("private_key_jwt registration (RFC 7591 jwks / jwks_uri)", () => {
  it("registers a keyed client without a secret and returns its keys", async () => {
    expect(agent).toMatchObject({ token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [publicJwk] } });
    expect(agent).not.toHaveProperty("client_secret");
  });

  it("refuses keys that are missing, doubled, private or symmetric, and unsafe jwks_uri", async () => {
    const base = { grant_types: ["client_credentials"], token_endpoint_auth_method: "private_key_jwt" };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, "token_endpoint_auth_method: private_key_jwt needs the client's public keys in jwks or jwks_uri"],
      [{ jwks: { keys: [publicJwk] }, jwks_uri: "https://keys.example/jwks" }, "jwks and jwks_uri must not both be present"],
      [{ jwks: { keys: [{ ...publicJwk, d: "secret" }] } }, "jwks.keys.0: must not contain private key material"],
      [{ jwks: { keys: [{ kty: "oct", k: "c2VjcmV0" }] } }, "jwks.keys.0.kty: must be an RSA, EC or OKP public key (no symmetric keys)"],
      [{ jwks: { keys: [] } }, "jwks.keys: must contain a key"],
      [{ jwks_uri: "http://keys.example/jwks" }, "jwks_uri must use https"],
      [{ jwks_uri: "https://169.254.169.254/jwks" }, "jwks_uri must not point to a special-use IP address (link-local)"],
      [{ jwks_uri: "https://keys.example/jwks#k" }, "jwks_uri must not contain a fragment"],
      [
        { jwks: { keys: [publicJwk] }, token_endpoint_auth_signing_alg: "HS256" },
        "token_endpoint_auth_signing_alg: must be an asymmetric JWS algorithm Latchkey supports",
      ],
    ];
    for (const [metadata, description] of cases) {
      await expectError(await adminCall("POST", "/clients", { ...base, ...metadata }), 400, "invalid_client_metadata", description);
    }
    await expectError(
      await adminCall("POST", "/clients", { grant_types: ["client_credentials"], token_endpoint_auth_signing_alg: "ES256" }),
      400,
      "invalid_client_metadata",
      "token_endpoint_auth_signing_alg applies only to token_endpoint_auth_method private_key_jwt",
    );
  });

  it("accepts them through dynamic registration too", async () => {
    const res = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        redirect_uris: ["https://app.example/cb"],
        token_endpoint_auth_method: "private_key_jwt",
        jwks_uri: "https://app.example/jwks.json",
        token_endpoint_auth_signing_alg: "ES256",
      }),
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      token_endpoint_auth_method: "private_key_jwt",
      jwks_uri: "https://app.example/jwks.json",
      token_endpoint_auth_signing_alg: "ES256",
    });
    expect(body).not.toHaveProperty("client_secret");
  });
});

describe("private_key_jwt at the token endpoint", () => {
  it("issues a token for a valid assertion, typed client-authentication+jwt, JWT, or untyped", async () => {
    for (const typ of ["client-authentication+jwt", "application/client-authentication+jwt", "JWT", undefined]) {
      const res = await token(await assertion({ header: { typ } }));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ token_type: "Bearer", scope: "mcp:read" });
    }
    // client_id may accompany the assertion, naming the same client (RFC 7521 §4.2).
    expect((await token(await assertion(), { client_id: agent.client_id })).status).toBe(200);
  });

  it("refuses a replayed jti", async () => {
    const jwt = await assertion();
    expect((await token(jwt)).status).toBe(200);
    await expectError(await token(jwt), 401, "invalid_client", "the client assertion was already used (its jti is single-use)");
  });

  it("leaves the assertion usable when the request it authenticated is refused later, and spent once it earns a token", async () => {
    const jwt = await assertion();
    const dpop = await DpopKey.generate();
    const nonce = (await postForm("/token", { grant_type: "client_credentials" }, { DPoP: await dpop.proof({ nonce: null }) })).headers.get("dpop-nonce");
    await expectError(
      await token(jwt, { resource: "https://unknown.example/mcp" }),
      400,
      "invalid_target",
      "resource https://unknown.example/mcp is not known to this authorization server",
    );
    await expectError(await token(jwt, { grant_type: "" }), 400, "invalid_request", "grant_type is required");
    await expectError(
      await token(jwt, {}, { DPoP: await dpop.proof({ nonce, htu: `${ISSUER}/elsewhere` }) }),
      400,
      "invalid_dpop_proof",
      "the DPoP proof's htu does not match the request URI",
    );
    await expectError(await postForm("/introspect", { client_assertion_type: JWT_BEARER, client_assertion: jwt }), 400, "invalid_request", "token is required");
    expect((await token(jwt)).status).toBe(200);
    await expectError(await token(jwt), 401, "invalid_client", "the client assertion was already used (its jti is single-use)");
  });

  it("keeps the assertion spent after a refusal the client cannot correct by retrying (invalid_grant)", async () => {
    const keyed = await createClient({
      grant_types: ["client_credentials", "refresh_token", "authorization_code"],
      redirect_uris: ["https://agent.example/cb"],
      token_endpoint_auth_method: "private_key_jwt",
      jwks: { keys: [publicJwk] },
    });
    const jwt = await assertion({ clientId: keyed.client_id });
    const refresh = { grant_type: "refresh_token", refresh_token: "lkr_not-a-real-token", client_assertion_type: JWT_BEARER, client_assertion: jwt };
    await expectError(await postForm("/token", refresh), 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
    await expectError(await postForm("/token", refresh), 401, "invalid_client", "the client assertion was already used (its jti is single-use)");
  });

  const AUD = "the client assertion's aud must be the issuer identifier, as a single string (RFC 10070)";
  const rejected: Array<[string, () => Promise<string>, string]> = [
    ["aud = the token endpoint URL", () => assertion({ claims: { aud: `${ISSUER}/token` } }), AUD],
    ["aud = an array holding the issuer", () => assertion({ claims: { aud: [ISSUER] } }), AUD],
    ["aud = an array holding the issuer and more", () => assertion({ claims: { aud: [ISSUER, `${ISSUER}/token`] } }), AUD],
    ["no aud", () => assertion({ claims: { aud: undefined } }), AUD],
    [
      "an expired assertion",
      () => assertion({ claims: { iat: Math.floor(Date.now() / 1000) - 300, exp: Math.floor(Date.now() / 1000) - 120 } }),
      "the client assertion has expired",
    ],
    [
      "a lifetime over 300 s",
      () => assertion({ claims: { exp: Math.floor(Date.now() / 1000) + 3600 } }),
      "the client assertion's lifetime must not exceed 300 seconds",
    ],
    [
      "exp - iat over 300 s",
      () => assertion({ claims: { iat: Math.floor(Date.now() / 1000) - 200, exp: Math.floor(Date.now() / 1000) + 200 } }),
      "the client assertion's lifetime must not exceed 300 seconds",
    ],
    ["no exp", () => assertion({ claims: { exp: undefined } }), "the client assertion must contain exp"],
    ["no jti", () => assertion({ claims: { jti: undefined } }), "the client assertion must contain jti"],
    ["a numeric jti", () => assertion({ claims: { jti: 42 } }), "the client assertion's jti must be a string of at most 256 characters"],
    ["a future iat", () => assertion({ claims: { iat: Math.floor(Date.now() / 1000) + 120 } }), "the client assertion's iat is in the future"],
    ["a future nbf", () => assertion({ claims: { nbf: Math.floor(Date.now() / 1000) + 120 } }), "the client assertion is not yet valid (nbf)"],
    ["iss ≠ sub", () => assertion({ claims: { sub: "someone-else" } }), "the client assertion's iss and sub must both be the client_id"],
    ["an unknown kid", () => assertion({ header: { kid: "k2" } }), "the client assertion's signature does not verify with the client's registered keys"],
    ["a wrong key", () => assertion({ signWith: otherKey }), "the client assertion's signature does not verify with the client's registered keys"],
    ["typ at+jwt", () => assertion({ header: { typ: "at+jwt" } }), "the client assertion's typ must be client-authentication+jwt"],
    [
      "alg none",
      async () => unsigned({ iss: agent.client_id, sub: agent.client_id, aud: ISSUER, exp: Math.floor(Date.now() / 1000) + 60, jti: "n" }),
      "the client assertion's alg is not allowed; use ES256, ES384, PS256, PS384, PS512, RS256, RS384, RS512, EdDSA, Ed25519",
    ],
    [
      "HS256 keyed with the public key",
      async () => {
        const t = Math.floor(Date.now() / 1000);
        return new SignJWT({ iss: agent.client_id, sub: agent.client_id, aud: ISSUER, exp: t + 60, jti: "h" })
          .setProtectedHeader({ alg: "HS256", kid: "k1" })
          .sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
      },
      "the client assertion's alg is not allowed; use ES256, ES384, PS256, PS384, PS512, RS256, RS384, RS512, EdDSA, Ed25519",
    ],
    ["a malformed JWT", async () => "not.a.jwt", "the client assertion is not a well-formed JWT"],
  ];
  for (const [name, make, description] of rejected) {
    it(`refuses ${name} with 401 invalid_client`, async () => {
      const res = await token(await make());
      expect(res.headers.get("www-authenticate")).toBeNull();
      await expectError(res, 401, "invalid_client", description);
    });
  }

  it("refuses a client_id that differs from the assertion's iss and sub", async () => {
    await expectError(
      await token(await assertion(), { client_id: "lk_other" }),
      401,
      "invalid_client",
      "the client assertion's iss and sub must both be the client_id",
    );
  });

  it("refuses a wrong or missing client_assertion_type, and a type without an assertion", async () => {
    const jwt = await assertion();
    const body = { grant_type: "client_credentials", client_assertion: jwt };
    await expectError(await postForm("/token", body), 401, "invalid_client", `client_assertion_type must be ${JWT_BEARER}`);
    await expectError(
      await postForm("/token", { ...body, client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:saml2-bearer" }),
      401,
      "invalid_client",
      `client_assertion_type must be ${JWT_BEARER}`,
    );
    await expectError(
      await postForm("/token", { grant_type: "client_credentials", client_assertion_type: JWT_BEARER, client_id: agent.client_id }),
      401,
      "invalid_client",
      "client_assertion is missing",
    );
  });

  it("refuses an assertion together with another method, and an assertion from a secret-based client", async () => {
    const secretClient = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
    await expectError(await token(await assertion(), { client_secret: "x" }), 400, "invalid_request", "more than one client authentication method was used");
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", client_assertion_type: JWT_BEARER, client_assertion: await assertion() },
      { Authorization: basic(secretClient.client_id, secretClient.client_secret as string) },
    );
    await expectError(res, 400, "invalid_request", "more than one client authentication method was used");
    await expectError(await token(await assertion({ clientId: secretClient.client_id })), 401, "invalid_client", "client authentication failed");
    // And the keyed client cannot fall back to a bare client_id.
    await expectError(
      await postForm("/token", { grant_type: "client_credentials", client_id: agent.client_id }),
      401,
      "invalid_client",
      "client authentication failed",
    );
  });

  it("holds a client to its registered token_endpoint_auth_signing_alg", async () => {
    const pair = await generateKeyPair("PS256");
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "rsa" };
    const pinned = await createClient({
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "ES256",
      jwks: { keys: [jwk, publicJwk] },
    });
    const ps = await assertion({ clientId: pinned.client_id, header: { alg: "PS256", kid: "rsa" }, signWith: pair.privateKey });
    await expectError(await token(ps), 401, "invalid_client", "the client assertion's alg is not allowed; use ES256");
    expect((await token(await assertion({ clientId: pinned.client_id }))).status).toBe(200);
  });

  it("verifies RSA, RSA-PSS, P-384 and Ed25519 keys", async () => {
    for (const alg of ["RS256", "PS256", "ES384", "EdDSA"] as const) {
      const pair = await generateKeyPair(alg, { extractable: true });
      const jwk = { ...(await exportJWK(pair.publicKey)), kid: alg };
      const client = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [jwk] } });
      const res = await token(await assertion({ clientId: client.client_id, header: { alg, kid: alg }, signWith: pair.privateKey }));
      expect(res.status, alg).toBe(200);
    }
  });

  it("authenticates at introspection too, with the issuer as audience", async () => {
    const issued = (await (await token(await assertion())).json()) as { access_token: string };
    const res = await postForm("/introspect", { token: issued.access_token, client_assertion_type: JWT_BEARER, client_assertion: await assertion() });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ active: true, client_id: agent.client_id });
  });
});

describe("private_key_jwt with keys at a jwks_uri", () => {
  it("fetches the keys safely, caches them, and refetches for an unknown kid (key rotation)", async () => {
    const rotated = await generateKeyPair("ES256");
    const rotatedJwk = { ...(await exportJWK(rotated.publicKey)), kid: "k2" };
    let published: JWK[] = [publicJwk];
    const fetched: string[] = [];
    setOutboundTransport(async (input, init) => {
      fetched.push(`${input} ${new Headers(init?.headers).get("accept")} ${init?.redirect}`);
      return Response.json({ keys: published }, { headers: { "Content-Type": "application/jwk-set+json" } });
    });
    const client = await createClient({
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "private_key_jwt",
      jwks_uri: "https://keys.example/jwks.json",
    });
    expect((await token(await assertion({ clientId: client.client_id }))).status).toBe(200);
    expect((await token(await assertion({ clientId: client.client_id }))).status).toBe(200);
    expect(fetched).toEqual(["https://keys.example/jwks.json application/jwk-set+json, application/json manual"]);
    published = [rotatedJwk];
    const rotatedAssertion = () => assertion({ clientId: client.client_id, header: { kid: "k2" }, signWith: rotated.privateKey });
    // Within the cooldown an unknown kid does not refetch: a stream of junk kids cannot hammer the client.
    await expectError(
      await token(await rotatedAssertion()),
      401,
      "invalid_client",
      "the client assertion's signature does not verify with the client's registered keys",
    );
    expect(fetched).toHaveLength(1);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 31_000);
      expect((await token(await rotatedAssertion())).status).toBe(200);
      expect(fetched).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it("answers 401 when the jwks_uri fails the fetch rules or holds private keys", async () => {
    const client = await createClient({
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "private_key_jwt",
      jwks_uri: "https://keys.example/broken.json",
    });
    setOutboundTransport(async () => new Response("nope", { status: 404 }));
    await expectError(
      await token(await assertion({ clientId: client.client_id })),
      401,
      "invalid_client",
      "the client's jwks_uri could not be used: it answered HTTP 404, not 200",
    );
    clearClientKeys();
    setOutboundTransport(async () => Response.json({ keys: [{ ...publicJwk, d: "private" }] }));
    await expectError(
      await token(await assertion({ clientId: client.client_id })),
      401,
      "invalid_client",
      "the client's jwks_uri could not be used: it is not a JWK Set of public keys",
    );
  });
});

describe("metadata", () => {
  it("advertises private_key_jwt and its algorithms", async () => {
    const m = (await (await call("/.well-known/oauth-authorization-server")).json()) as Record<string, string[]>;
    expect(m.token_endpoint_auth_methods_supported).toEqual([
      "none",
      "client_secret_basic",
      "client_secret_post",
      "private_key_jwt",
      "attest_jwt_client_auth",
      "attest_jwt_client_auth_dpop",
      "httpsig_client_auth",
    ]);
    expect(m.introspection_endpoint_auth_methods_supported).toContain("private_key_jwt");
    expect(m.token_endpoint_auth_signing_alg_values_supported).toEqual([
      "ES256",
      "ES384",
      "PS256",
      "PS384",
      "PS512",
      "RS256",
      "RS384",
      "RS512",
      "EdDSA",
      "Ed25519",
    ]);
    expect(m.token_endpoint_auth_signing_alg_values_supported).not.toContain("HS256");
  });
});

describe("with DPoP nonces (RFC 9449 §8)", () => {
  it("refuses a proof without a nonce before the client assertion is spent, so the retry with the same assertion works", async () => {
    const dpop = await DpopKey.generate();
    const signed = await assertion();
    const first = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE, client_assertion_type: JWT_BEARER, client_assertion: signed },
      { DPoP: await dpop.proof({ nonce: null }) },
    );
    const nonce = first.headers.get("dpop-nonce");
    expect(nonce).toBeTruthy();
    await expectError(first, 400, "use_dpop_nonce", "the authorization server requires a nonce in the DPoP proof");
    const retry = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE, client_assertion_type: JWT_BEARER, client_assertion: signed },
      { DPoP: await dpop.proof({ nonce }) },
    );
    expect(retry.status, await retry.clone().text()).toBe(200);
    expect(((await retry.json()) as { token_type: string }).token_type).toBe("DPoP");
  });

  it("gives the next nonce with every answer to a DPoP request, a refused client authentication included", async () => {
    const dpop = await DpopKey.generate();
    const res = await postForm("/token", { grant_type: "client_credentials", client_id: "lk_nobody", client_secret: "x" }, { DPoP: await dpop.proof() });
    expect(res.headers.get("dpop-nonce")).toBeTruthy();
    await expectError(res, 401, "invalid_client", "client authentication failed");
  });
});
