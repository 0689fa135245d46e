import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { atHash } from "../../workers/tokens/access-token";
import { obtainCode, pkce } from "./browser";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

const REDIRECT = "https://app.example/callback";
let app: CreatedClient;
let other: CreatedClient;
let publicApp: CreatedClient;

beforeAll(async () => {
  app = await createClient({
    client_name: "App",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
  other = await createClient({
    client_name: "Other",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
  publicApp = await createClient({
    client_name: "SPA",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "none",
    id_token_signed_response_alg: "ES256",
  });
});

async function code(client: CreatedClient, extra: Record<string, string> = {}) {
  const p = await pkce();
  const { code } = await obtainCode(
    {
      response_type: "code",
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      prompt: "consent",
      ...extra,
    },
    REDIRECT,
  );
  return { code, verifier: p.verifier };
}

function redeem(client: CreatedClient, fields: Record<string, string>) {
  const auth: Record<string, string> = client.client_secret ? { Authorization: basic(client.client_id, client.client_secret) } : {};
  const body = client.client_secret ? fields : { ...fields, client_id: client.client_id };
  return postForm("/token", { grant_type: "authorization_code", ...body }, auth);
}

async function jwks() {
  return createLocalJWKSet(await (await call("/jwks")).json());
}

describe("authorization_code grant (OAuth 2.1 §4.1.3)", () => {
  it("issues a resource-bound access token and a refresh token", async () => {
    const c = await code(app, { resource: MCP_RESOURCE, scope: "mcp:read" });
    const res = await redeem(app, { code: c.code, code_verifier: c.verifier });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, string>;
    expect(body).toEqual({
      access_token: expect.any(String),
      token_type: "Bearer",
      expires_in: 600,
      scope: "mcp:read",
      refresh_token: expect.stringMatching(/^lkr_[0-9a-f]{64}_/),
    });
    const { payload, protectedHeader } = await jwtVerify(body.access_token as string, await jwks(), { issuer: ISSUER, audience: MCP_RESOURCE, typ: "at+jwt" });
    expect(protectedHeader.alg).toBe("ES256");
    expect(payload).toMatchObject({ sub: "usr_dev_alice", client_id: app.client_id, scope: "mcp:read" });
    expect(payload.auth_time).toBeTypeOf("number");
  });

  it("issues an ID token with nonce, at_hash and auth_time (RS256 by default) and no refresh token without offline_access", async () => {
    const c = await code(app, { scope: "openid profile", nonce: "n-0S6_WzA2Mj" });
    const body = (await (await redeem(app, { code: c.code, code_verifier: c.verifier })).json()) as Record<string, string>;
    expect(body.refresh_token).toBeUndefined();
    expect(body.scope).toBe("openid profile");
    const { payload, protectedHeader } = await jwtVerify(body.id_token as string, await jwks(), { issuer: ISSUER, audience: app.client_id });
    expect(protectedHeader).toMatchObject({ alg: "RS256", typ: "JWT" });
    expect(payload).toMatchObject({ sub: "usr_dev_alice", nonce: "n-0S6_WzA2Mj", amr: ["pwd"], at_hash: await atHash(body.access_token as string) });
    expect(payload.auth_time).toBeTypeOf("number");
    expect(decodeJwt(body.access_token as string).aud).toBe(ISSUER);
  });

  it("gives OIDC clients a refresh token when offline_access is granted, and signs ES256 ID tokens when registered", async () => {
    const c = await code(publicApp, { scope: "openid offline_access" });
    const body = (await (await redeem(publicApp, { code: c.code, code_verifier: c.verifier })).json()) as Record<string, string>;
    expect(body.refresh_token).toMatch(/^lkr_/);
    const { protectedHeader } = await jwtVerify(body.id_token as string, await jwks(), { issuer: ISSUER, audience: publicApp.client_id });
    expect(protectedHeader.alg).toBe("ES256");
  });

  it("refuses a second redemption and revokes what the first one issued", async () => {
    const c = await code(app, { resource: MCP_RESOURCE });
    const first = (await (await redeem(app, { code: c.code, code_verifier: c.verifier })).json()) as Record<string, string>;
    await expectError(
      await redeem(app, { code: c.code, code_verifier: c.verifier }),
      400,
      "invalid_grant",
      "the authorization code is invalid, expired or already used",
    );
    const refresh = await postForm(
      "/token",
      { grant_type: "refresh_token", refresh_token: first.refresh_token as string },
      { Authorization: basic(app.client_id, app.client_secret as string) },
    );
    await expectError(refresh, 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
    const introspection = await postForm(
      "/introspect",
      { token: first.access_token as string },
      { Authorization: basic(app.client_id, app.client_secret as string) },
    );
    expect(await introspection.json()).toEqual({ active: false });
  });

  it("does not revoke on a replay with the wrong verifier or by another client", async () => {
    const c = await code(app, { resource: MCP_RESOURCE });
    await expectError(
      await redeem(app, { code: c.code, code_verifier: "w".repeat(43) }),
      400,
      "invalid_grant",
      "code_verifier does not match the code_challenge",
    );
    await expectError(
      await redeem(other, { code: c.code, code_verifier: c.verifier }),
      400,
      "invalid_grant",
      "the authorization code was issued to another client",
    );
    expect((await redeem(app, { code: c.code, code_verifier: c.verifier })).status).toBe(200);
  });

  it("refuses a resource the code was not for with invalid_target and leaves the code redeemable (RFC 8707 §2.2)", async () => {
    const c = await code(app, { resource: MCP_RESOURCE });
    await expectError(
      await redeem(app, { code: c.code, code_verifier: c.verifier, resource: "https://other.example/" }),
      400,
      "invalid_target",
      "resource https://other.example/ was not granted",
    );
    const res = await redeem(app, { code: c.code, code_verifier: c.verifier, resource: MCP_RESOURCE });
    const body = (await res.json()) as Record<string, string>;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token as string).aud).toBe(MCP_RESOURCE);
  });

  it("refuses a client its attestation policy refuses every token before spending the code", async () => {
    const c = await code(app, { resource: MCP_RESOURCE });
    expect((await adminCall("PUT", `/policies/clients/${app.client_id}`, { require_attestation: true })).status).toBe(200);
    try {
      await expectError(
        await redeem(app, { code: c.code, code_verifier: c.verifier }),
        403,
        "access_denied",
        "client attestation is required for this request",
      );
    } finally {
      expect((await adminCall("DELETE", `/policies/clients/${app.client_id}`)).status).toBe(204);
    }
    expect((await redeem(app, { code: c.code, code_verifier: c.verifier })).status).toBe(200);
  });

  it("refuses a code for a resource whose policy requires attestation before spending it, when the request names the resource", async () => {
    const strict = "https://strict.example/api";
    const created = await adminCall("POST", "/resources", { resource: strict, name: "Strict API", scopes_supported: ["strict:read"] });
    const { id } = (await created.json()) as { id: string };
    const c = await code(app, { resource: strict, scope: "strict:read" });
    expect((await adminCall("PUT", `/policies/resources/${id}`, { require_attestation: true })).status).toBe(200);
    try {
      await expectError(
        await redeem(app, { code: c.code, code_verifier: c.verifier, resource: strict }),
        403,
        "access_denied",
        "client attestation is required for this request",
      );
    } finally {
      expect((await adminCall("DELETE", `/policies/resources/${id}`)).status).toBe(204);
    }
    const res = await redeem(app, { code: c.code, code_verifier: c.verifier, resource: strict });
    expect(res.status, await res.clone().text()).toBe(200);
  });

  it("checks redirect_uri when a client sends it", async () => {
    const c = await code(app);
    await expectError(
      await redeem(app, { code: c.code, code_verifier: c.verifier, redirect_uri: "https://app.example/other" }),
      400,
      "invalid_grant",
      "redirect_uri does not match the one in the authorization request",
    );
    expect((await redeem(app, { code: c.code, code_verifier: c.verifier, redirect_uri: REDIRECT })).status).toBe(200);
  });

  it("requires code and a well-formed code_verifier", async () => {
    await expectError(await redeem(app, { code_verifier: "v".repeat(43) }), 400, "invalid_request", "code is required");
    await expectError(await redeem(app, { code: "lkc_x" }), 400, "invalid_request", "code_verifier is required");
    await expectError(
      await redeem(app, { code: "lkc_x", code_verifier: "short" }),
      400,
      "invalid_request",
      "code_verifier must be 43-128 unreserved characters (RFC 7636 section 4.1)",
    );
    await expectError(
      await redeem(app, { code: "lkc_x", code_verifier: "v".repeat(43) }),
      400,
      "invalid_grant",
      "the authorization code is invalid, expired or already used",
    );
    await expectError(
      await redeem(app, { code: `lkc_${"0".repeat(64)}_${"a".repeat(43)}`, code_verifier: "v".repeat(43) }),
      400,
      "invalid_grant",
      "the authorization code is invalid, expired or already used",
    );
  });

  it("gives exactly one success to 20 simultaneous redemptions of one code", async () => {
    const c = await code(app, { resource: MCP_RESOURCE });
    const results = await Promise.all(Array.from({ length: 20 }, () => redeem(app, { code: c.code, code_verifier: c.verifier })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, ...Array(19).fill(400)]);
    const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<Record<string, string>>;
    expect(bodies.filter((b) => b.error === "invalid_grant")).toHaveLength(19);
  });

  it("lets a public client redeem with client_id and PKCE alone", async () => {
    const c = await code(publicApp, { resource: MCP_RESOURCE });
    const res = await redeem(publicApp, { code: c.code, code_verifier: c.verifier });
    expect(res.status).toBe(200);
  });
});
