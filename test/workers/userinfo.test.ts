import { beforeAll, describe, expect, it } from "vitest";
import { obtainCode, pkce } from "./browser";
import { basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

const REDIRECT = "https://app.example/callback";
let app: CreatedClient;

beforeAll(async () => {
  app = await createClient({
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
});

const asApp = () => ({ Authorization: basic(app.client_id, app.client_secret as string) });

/** Tokens for the grant of one authorization request; `redeem` adds parameters to the code redemption. */
async function tokens(extra: Record<string, string>, redeem: Record<string, string> = {}) {
  const p = await pkce();
  const { code } = await obtainCode(
    {
      response_type: "code",
      client_id: app.client_id,
      redirect_uri: REDIRECT,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      prompt: "consent",
      ...extra,
    },
    REDIRECT,
  );
  return postForm("/token", { grant_type: "authorization_code", code, code_verifier: p.verifier, ...redeem }, asApp());
}

async function accessToken(extra: Record<string, string>) {
  return ((await (await tokens(extra)).json()) as { access_token: string }).access_token;
}

function userinfo(token?: string) {
  return call("/userinfo", { headers: token ? { Authorization: `Bearer ${token}` } : {} });
}

describe("userinfo (OIDC Core §5.3)", () => {
  it("returns the claims the scopes allow for a token whose audience is the issuer", async () => {
    const token = await accessToken({ scope: "openid profile email" });
    const res = await userinfo(token);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toEqual({ sub: "usr_dev_alice", name: "Alice Example", email: "alice@example.com" });
    const minimal = await userinfo(await accessToken({ scope: "openid" }));
    expect(await minimal.json()).toEqual({ sub: "usr_dev_alice" });
  });

  it("accepts POST with the token in the form body", async () => {
    const token = await accessToken({ scope: "openid" });
    const res = await postForm("/userinfo", { access_token: token });
    expect(await res.json()).toEqual({ sub: "usr_dev_alice" });
  });

  it("puts the challenge on a form body it refuses too (RFC 6750 §3), and reads no body of another type", async () => {
    const token = await accessToken({ scope: "openid" });
    const repeated = await call("/userinfo", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: `access_token=${token}&access_token=${token}`,
    });
    expect(repeated.headers.get("www-authenticate")).toBe('Bearer error="invalid_request", error_description="parameter access_token is repeated"');
    await expectError(repeated, 400, "invalid_request", "parameter access_token is repeated");
    const otherType = await call("/userinfo", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencodedX" },
      body: `access_token=${token}`,
    });
    expect(otherType.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}", DPoP realm="${ISSUER}", algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"`);
    await expectError(otherType, 401, "invalid_token", "an access token is required");
  });

  it("refuses a token bound to a resource with 401 invalid_token", async () => {
    const token = await accessToken({ scope: "openid mcp:read", resource: MCP_RESOURCE });
    const res = await userinfo(token);
    expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_token", error_description="the access token is bound to another resource"');
    await expectError(res, 401, "invalid_token", "the access token is bound to another resource");
  });

  it("serves a grant bound to a resource once the client asks for a token for the issuer (resource=ISSUER), at redemption or refresh", async () => {
    const request = { scope: "openid profile email offline_access mcp:read", resource: MCP_RESOURCE };
    const redeemed = await tokens(request, { resource: ISSUER });
    expect(redeemed.status).toBe(200);
    const first = (await redeemed.json()) as { access_token: string; refresh_token: string; scope: string };
    expect(first.scope).toBe("openid profile email offline_access");
    expect(await (await userinfo(first.access_token)).json()).toEqual({ sub: "usr_dev_alice", name: "Alice Example", email: "alice@example.com" });
    // The same grant still gives tokens for its resource, and one for the issuer on refresh.
    const forResource = await postForm("/token", { grant_type: "refresh_token", refresh_token: first.refresh_token }, asApp());
    const second = (await forResource.json()) as { access_token: string; refresh_token: string; scope: string };
    expect(second.scope).toBe("mcp:read");
    const forIssuer = await postForm("/token", { grant_type: "refresh_token", refresh_token: second.refresh_token, resource: ISSUER }, asApp());
    const third = (await forIssuer.json()) as { access_token: string };
    expect((await userinfo(third.access_token)).status).toBe(200);
  });

  it("gives no token for the issuer from a grant without openid (invalid_target), and spends nothing", async () => {
    const p = await pkce();
    const params = { response_type: "code", client_id: app.client_id, redirect_uri: REDIRECT, code_challenge: p.challenge, code_challenge_method: "S256" };
    const { code } = await obtainCode({ ...params, scope: "mcp:read", resource: MCP_RESOURCE }, REDIRECT);
    const redeem = (extra: Record<string, string>) =>
      postForm("/token", { grant_type: "authorization_code", code, code_verifier: p.verifier, ...extra }, asApp());
    await expectError(await redeem({ resource: ISSUER }), 400, "invalid_target", `resource ${ISSUER} was not granted`);
    expect((await redeem({})).status).toBe(200);
  });

  it("refuses a token without openid with 403 insufficient_scope", async () => {
    const token = await accessToken({ scope: "profile" });
    const res = await userinfo(token);
    expect(res.headers.get("www-authenticate")).toContain('scope="openid"');
    await expectError(res, 403, "insufficient_scope", "the access token lacks the openid scope");
  });

  it("answers 401 with a bare challenge when no token is sent, and invalid_token for a bad one", async () => {
    const none = await userinfo();
    // RFC 9449 §7.2 (Figure 17): both schemes offered, DPoP with the proof algorithms it accepts.
    expect(none.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}", DPoP realm="${ISSUER}", algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"`);
    await expectError(none, 401, "invalid_token", "an access token is required");
    await expectError(await userinfo("garbage"), 401, "invalid_token", "the access token is invalid, expired or revoked");
  });

  it("answers another authorization scheme like no token: 401, a bare challenge (RFC 6750 §3.1)", async () => {
    const basicAuth = await call("/userinfo", { headers: { Authorization: "Basic dXNlcjpwYXNz" } });
    expect(basicAuth.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}", DPoP realm="${ISSUER}", algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"`);
    await expectError(basicAuth, 401, "invalid_token", "an access token is required");
    // Basic carries no access token, so one in the form body is the only one sent.
    const token = await accessToken({ scope: "openid" });
    const res = await postForm("/userinfo", { access_token: token }, { Authorization: "Basic dXNlcjpwYXNz" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sub: "usr_dev_alice" });
  });

  it("refuses the token once it is revoked", async () => {
    const token = await accessToken({ scope: "openid" });
    await postForm("/revoke", { token }, { Authorization: basic(app.client_id, app.client_secret as string) });
    await expectError(await userinfo(token), 401, "invalid_token", "the access token is invalid, expired or revoked");
  });
});
