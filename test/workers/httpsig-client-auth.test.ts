import { decodeJwt, exportJWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { contentDigest, signRequest } from "../../workers/httpsig/sign";
import { verifyRequestSignature } from "../../workers/httpsig/verify";
import { codeWithVerifier } from "./browser";
import { DpopKey } from "./dpop";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE } from "./helpers";
import { type SigningKey, signedPost, signingKey } from "./httpsig-signer";

/**
 * `httpsig_client_auth`: client authentication by an RFC 9421 HTTP message signature under
 * draft-richer-oauth-httpsig-03 §3.3, and the `httpsig` token it earns (bound by `cnf.jwk`). Every
 * rejection is 401 invalid_client with its exact description.
 */
let key: SigningKey;
let other: SigningKey;
let agent: CreatedClient;
const form = () => ({ grant_type: "client_credentials", resource: MCP_RESOURCE, client_id: agent.client_id });
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  key = await signingKey("ES256", "k1");
  other = await signingKey("ES256", "k1");
  agent = await createClient({
    client_name: "Signing agent",
    grant_types: ["client_credentials"],
    token_endpoint_auth_method: "httpsig_client_auth",
    jwks: { keys: [key.jwk] },
    scope: "mcp:read",
  });
});

describe("a signed token request", () => {
  it("authenticates the client and binds the token to the signing key (token_type httpsig, cnf.jwk)", async () => {
    const res = await signedPost("/token", form(), key);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; token_type: string };
    expect(body.token_type).toBe("httpsig");
    const { kty, crv, x, y } = key.jwk;
    expect(decodeJwt(body.access_token).cnf).toEqual({ jwk: { kty, crv, x, y, kid: "k1", alg: "ES256" } });
    // The same method authenticates at introspection; the token shows its binding there.
    const introspected = await signedPost("/introspect", { token: body.access_token, client_id: agent.client_id }, key);
    expect(await introspected.json()).toMatchObject({ active: true, token_type: "httpsig", cnf: { jwk: { kid: "k1" } } });
  });

  for (const alg of ["EdDSA", "RS256", "PS256"]) {
    it(`verifies with an ${alg} key, the algorithm taken from the JWK`, async () => {
      const k = await signingKey(alg, `k-${alg}`);
      const client = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "httpsig_client_auth", jwks: { keys: [k.jwk] } });
      const res = await signedPost("/token", { ...form(), client_id: client.client_id }, k);
      expect(res.status).toBe(200);
    });
  }

  it("verifies a target URI with an empty query, its ? included (RFC 9421 §2.2.2)", async () => {
    const res = await signedPost("/token?", form(), key, { url: `${ISSUER}/token?` });
    expect(res.status, await res.clone().text()).toBe(200);
  });

  it("is advertised in the server metadata", async () => {
    const meta = (await (await call("/.well-known/oauth-authorization-server")).json()) as Record<string, string[]>;
    expect(meta.token_endpoint_auth_methods_supported).toContain("httpsig_client_auth");
  });

  it("refuses RSA keys under 2048 bits, at registration and when verifying (RFC 7518 §3.3)", async () => {
    const params = { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
    const small = (await crypto.subtle.generateKey(params, true, ["sign", "verify"])) as CryptoKeyPair;
    const jwk = { ...(await exportJWK(small.publicKey)), kid: "small", alg: "RS256" };
    const res = await adminCall("POST", "/clients", {
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "httpsig_client_auth",
      jwks: { keys: [jwk] },
    });
    await expectError(res, 400, "invalid_client_metadata", "jwks.keys.0: an RSA key must be at least 2048 bits");
    // A key that reached the verifier another way verifies nothing either.
    const url = `${ISSUER}/token`;
    const headers = await signRequest({ method: "POST", url, body: "a=b" }, { privateKey: small.privateKey, alg: "RS256", keyid: "small", tag: "t" });
    const verified = await verifyRequestSignature(
      { method: "POST", headers },
      {
        tag: "t",
        required: ["@method"],
        targetUri: new URL(url),
        now: now(),
        windowSeconds: 60,
        single: true,
        body: async () => new TextEncoder().encode("a=b"),
        keyFor: async () => ({ ok: true, value: jwk }),
        claimNonce: async () => true,
      },
    );
    expect(verified).toEqual({ ok: false, description: "the signature does not verify with the key small" });
  });

  it("needs the client's keys at registration", async () => {
    const res = await adminCall("POST", "/clients", { grant_types: ["client_credentials"], token_endpoint_auth_method: "httpsig_client_auth" });
    await expectError(
      res,
      400,
      "invalid_client_metadata",
      "token_endpoint_auth_method: httpsig_client_auth needs the client's public keys in jwks or jwks_uri",
    );
  });
});

describe("rejections (401 invalid_client)", () => {
  const cases: Array<[string, () => Promise<Response>, string]> = [
    ["a signature with another tag", () => signedPost("/token", form(), key, { tag: "httpsig-oauth" }), "client authentication failed"],
    [
      "a signature not covering content-digest",
      () => signedPost("/token", form(), key, { components: ["@method", "@target-uri"] }),
      "the signature must cover content-digest",
    ],
    [
      "a signature not covering @target-uri",
      () => signedPost("/token", form(), key, { components: ["@method", "content-digest"] }),
      "the signature must cover @target-uri",
    ],
    [
      "a stale created",
      () => signedPost("/token", form(), key, { created: now() - 31 }),
      "the signature's created time is outside the allowed window of 30 seconds",
    ],
    [
      "a created in the future",
      () => signedPost("/token", form(), key, { created: now() + 31 }),
      "the signature's created time is outside the allowed window of 30 seconds",
    ],
    ["an expired signature", () => signedPost("/token", form(), key, { expires: now() - 1 }), "the signature has expired"],
    ["an unknown keyid", () => signedPost("/token", form(), key, { keyid: "nope" }), "keyid nope does not name a key of this client"],
    ["a signature by another key", () => signedPost("/token", form(), key, { privateKey: other.privateKey }), "the signature does not verify with the key k1"],
    [
      "an alg parameter",
      () => signedPost("/token", form(), key, { extraParams: { alg: "ecdsa-p256-sha256" } }),
      "the signature must not carry an alg parameter; the algorithm comes from the key",
    ],
    [
      "a body other than the one digested",
      () => signedPost("/token", form(), key, { sendBody: new URLSearchParams({ ...form(), scope: "mcp:write" }).toString() }),
      "Content-Digest sha-256 does not match the request body",
    ],
    [
      "a digest replaced to match a tampered body",
      async () => {
        const tampered = new URLSearchParams({ ...form(), scope: "mcp:write" }).toString();
        // The signature covers the original digest; the new one matches the body but breaks the signature.
        return signedPost("/token", form(), key, { sendBody: tampered, after: { "content-digest": await contentDigest(tampered) } });
      },
      "the signature does not verify with the key k1",
    ],
    [
      "a signature over another host's URI, sent with that Host (never trusted)",
      () => signedPost("/token", form(), key, { url: "http://evil.example/token", sendUrl: "http://evil.example/token" }),
      "the signature does not verify with the key k1",
    ],
    [
      "a Signature-Key runtime key",
      () => signedPost("/token", form(), key, { headers: { "signature-key": ":e30=:" } }),
      "Signature-Key is not supported; sign with a key registered in the client's jwks or jwks_uri",
    ],
    [
      "no client_id",
      () => signedPost("/token", { grant_type: "client_credentials" }, key),
      "client_id is required with an HTTP message signature (httpsig_client_auth)",
    ],
  ];
  for (const [name, send, description] of cases) {
    it(`refuses ${name}`, async () => {
      await expectError(await send(), 401, "invalid_client", description);
    });
  }

  it("refuses a replayed nonce", async () => {
    const nonce = `n-${crypto.randomUUID()}`;
    expect((await signedPost("/token", form(), key, { nonce })).status).toBe(200);
    await expectError(await signedPost("/token", form(), key, { nonce }), 401, "invalid_client", "the signature's nonce was already used");
  });

  it("refuses a second signature with the tag", async () => {
    const body = new URLSearchParams(form()).toString();
    const sign = (label: string) =>
      signRequest(
        { method: "POST", url: `${ISSUER}/token`, headers: { "content-type": "application/x-www-form-urlencoded" }, body },
        { privateKey: key.privateKey, alg: "ES256", keyid: "k1", tag: "httpsig-oauth-token-request", label },
      );
    const [a, b] = [await sign("a"), await sign("b")];
    a.set("signature-input", `${a.get("signature-input")}, ${b.get("signature-input")}`);
    a.set("signature", `${a.get("signature")}, ${b.get("signature")}`);
    const res = await call("/token", { method: "POST", headers: a, body });
    await expectError(res, 401, "invalid_client", "more than one signature is tagged httpsig-oauth-token-request");
  });

  it("refuses a signature beside another client authentication method (400)", async () => {
    const res = await signedPost("/token", form(), key, { headers: { authorization: basic(agent.client_id, "x") } });
    await expectError(res, 400, "invalid_request", "more than one client authentication method was used");
  });

  it("refuses a DPoP proof beside the signature: a token has one binding (400)", async () => {
    const proof = await (await DpopKey.generate()).proof();
    const res = await signedPost("/token", form(), key, { headers: { dpop: proof } });
    await expectError(res, 400, "invalid_request", "an access token is bound to one key: send a DPoP proof or an HTTP message signature, not both");
  });
});

describe("the code and refresh grants, signed", () => {
  const REDIRECT = "https://signer.example/callback";
  const BOTH = "an access token is bound to one key: send a DPoP proof or an HTTP message signature, not both";

  it("refuses a DPoP proof beside the signature before anything is spent: the code and the refresh token stay good", async () => {
    const client = await createClient({
      grant_types: ["authorization_code", "refresh_token"],
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: "httpsig_client_auth",
      jwks: { keys: [key.jwk] },
    });
    const { code, verifier } = await codeWithVerifier(client.client_id, REDIRECT, MCP_RESOURCE, "mcp:read");
    const redemption = { grant_type: "authorization_code", code, code_verifier: verifier, client_id: client.client_id };
    const dpop = async () => ({ headers: { dpop: await (await DpopKey.generate()).proof() } });
    await expectError(await signedPost("/token", redemption, key, await dpop()), 400, "invalid_request", BOTH);
    const redeemed = await signedPost("/token", redemption, key);
    const tokens = (await redeemed.json()) as { refresh_token: string; token_type: string };
    expect(redeemed.status, JSON.stringify(tokens)).toBe(200);
    expect(tokens.token_type).toBe("httpsig");

    const refresh = { grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: client.client_id };
    await expectError(await signedPost("/token", refresh, key, await dpop()), 400, "invalid_request", BOTH);
    const introspected = await signedPost("/introspect", { token: tokens.refresh_token, client_id: client.client_id }, key);
    expect(await introspected.json()).toMatchObject({ active: true, client_id: client.client_id });
  });
});

describe("keys from the client's jwks_uri", () => {
  it("verifies with a key fetched from jwks_uri, and refetches when an unknown keyid arrives", async () => {
    const { setOutboundTransport } = await import("../../workers/clients/safe-fetch");
    const { clearClientKeys } = await import("../../workers/clients/client-keys");
    const first = await signingKey("ES256", "uri-1");
    const rotated = await signingKey("ES256", "uri-2");
    let published = [first.jwk];
    let fetched = 0;
    setOutboundTransport(async (input) => {
      fetched++;
      expect(String(input)).toBe("https://agent.example/jwks.json");
      return Response.json({ keys: published });
    });
    try {
      const client = await createClient({
        grant_types: ["client_credentials"],
        token_endpoint_auth_method: "httpsig_client_auth",
        jwks_uri: "https://agent.example/jwks.json",
      });
      const f = { ...form(), client_id: client.client_id };
      const firstRes = await signedPost("/token", f, first);
      expect(firstRes.status, await firstRes.clone().text()).toBe(200);
      expect(fetched).toBe(1);
      // A key the cached set does not have: the set is fetched again (after the refetch cooldown).
      published = [first.jwk, rotated.jwk];
      // jose's remote key set keeps its cooldown by Date.now(), so the whole isolate's clock moves.
      const { vi } = await import("vitest");
      vi.useFakeTimers({ toFake: ["Date"] });
      try {
        vi.setSystemTime(Date.now() + 31_000);
        const res = await signedPost("/token", f, rotated);
        expect(res.status, await res.clone().text()).toBe(200);
        expect(fetched).toBe(2);
      } finally {
        vi.useRealTimers();
      }
      // A key nobody published is refused.
      const stranger = await signingKey("ES256", "uri-3");
      await expectError(await signedPost("/token", f, stranger), 401, "invalid_client", /keyid/);
    } finally {
      setOutboundTransport();
      clearClientKeys();
    }
  });
});
