import { decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { authorizeUrl, Browser, clientRedirect, obtainCode, pkce } from "./browser";
import { DpopKey } from "./dpop";
import { basic, type CreatedClient, createClient, expectError, MCP_RESOURCE, postForm } from "./helpers";

/**
 * What DPoP binds at the code and refresh grants (RFC 9449 §5, §10): access tokens to the proof's key,
 * a public client's refresh tokens to the key it redeemed with, a code to its `dpop_jkt`; and what it
 * leaves alone: a confidential client's refresh tokens.
 */
const REDIRECT = "https://app.example/callback";
let spa: CreatedClient;
let web: CreatedClient;
let key: DpopKey;
let otherKey: DpopKey;

beforeAll(async () => {
  const metadata = { redirect_uris: [REDIRECT], grant_types: ["authorization_code", "refresh_token"] };
  spa = await createClient({ ...metadata, token_endpoint_auth_method: "none" });
  web = await createClient({ ...metadata, token_endpoint_auth_method: "client_secret_basic" });
  [key, otherKey] = await Promise.all([DpopKey.generate(), DpopKey.generate()]);
});

function auth(client: CreatedClient): { fields: Record<string, string>; headers: Record<string, string> } {
  return client.client_secret
    ? { fields: {}, headers: { Authorization: basic(client.client_id, client.client_secret) } }
    : { fields: { client_id: client.client_id }, headers: {} };
}

async function code(client: CreatedClient, extra: Record<string, string> = {}) {
  const p = await pkce();
  const { code } = await obtainCode(
    {
      response_type: "code",
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      resource: MCP_RESOURCE,
      scope: "mcp:read",
      ...extra,
    },
    REDIRECT,
  );
  return { code, verifier: p.verifier };
}

async function redeem(client: CreatedClient, c: { code: string; verifier: string }, dpop?: DpopKey) {
  const a = auth(client);
  const headers = { ...a.headers, ...(dpop ? { DPoP: await dpop.proof() } : {}) };
  return postForm("/token", { grant_type: "authorization_code", code: c.code, code_verifier: c.verifier, ...a.fields }, headers);
}

async function refresh(client: CreatedClient, token: string, dpop?: DpopKey) {
  const a = auth(client);
  const headers = { ...a.headers, ...(dpop ? { DPoP: await dpop.proof() } : {}) };
  return postForm("/token", { grant_type: "refresh_token", refresh_token: token, ...a.fields }, headers);
}

type Tokens = { access_token: string; refresh_token: string; token_type: string };

async function ok(res: Response): Promise<Tokens> {
  const body = (await res.json()) as Tokens;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

const jkt = (t: Tokens) => (decodeJwt(t.access_token).cnf as { jkt?: string } | undefined)?.jkt;
const REFRESH_BOUND = "the refresh token is bound to a DPoP key this request did not prove";
const CODE_BOUND = "the authorization code is bound to a DPoP key (dpop_jkt) this request did not prove";

describe("public client: refresh tokens bound to the DPoP key (RFC 9449 §5)", () => {
  it("binds the access token and the refresh-token family to the key it redeemed with", async () => {
    const first = await ok(await redeem(spa, await code(spa), key));
    expect(first.token_type).toBe("DPoP");
    expect(jkt(first)).toBe(key.jkt);
    const second = await ok(await refresh(spa, first.refresh_token, key));
    expect(second.token_type).toBe("DPoP");
    expect(jkt(second)).toBe(key.jkt);
    expect(second.refresh_token).not.toBe(first.refresh_token);
  });

  it("refuses a refresh with another key or without a proof, and the token stays usable (nothing revoked)", async () => {
    const first = await ok(await redeem(spa, await code(spa), key));
    await expectError(await refresh(spa, first.refresh_token, otherKey), 400, "invalid_grant", REFRESH_BOUND);
    await expectError(await refresh(spa, first.refresh_token), 400, "invalid_grant", REFRESH_BOUND);
    expect(jkt(await ok(await refresh(spa, first.refresh_token, key)))).toBe(key.jkt);
  });

  it("leaves the family unbound when the code was redeemed without DPoP; the first refresh with a proof binds it (RFC 9449 §5)", async () => {
    const first = await ok(await redeem(spa, await code(spa)));
    expect(first.token_type).toBe("Bearer");
    expect(jkt(first)).toBeUndefined();
    const unbound = await ok(await refresh(spa, first.refresh_token));
    expect(unbound.token_type).toBe("Bearer");
    const second = await ok(await refresh(spa, unbound.refresh_token, key));
    expect(second.token_type).toBe("DPoP");
    expect(jkt(second)).toBe(key.jkt);
    // The refresh token it got is bound to that key now: without a proof, or with another key, it is refused.
    await expectError(await refresh(spa, second.refresh_token), 400, "invalid_grant", REFRESH_BOUND);
    await expectError(await refresh(spa, second.refresh_token, otherKey), 400, "invalid_grant", REFRESH_BOUND);
    expect(jkt(await ok(await refresh(spa, second.refresh_token, key)))).toBe(key.jkt);
  });
});

describe("confidential client: refresh tokens stay bound to the client, not a key (RFC 9449 §5)", () => {
  it("refreshes with another key, binding the new access token to it, or without DPoP as Bearer", async () => {
    const first = await ok(await redeem(web, await code(web), key));
    expect(jkt(first)).toBe(key.jkt);
    const second = await ok(await refresh(web, first.refresh_token, otherKey));
    expect(second.token_type).toBe("DPoP");
    expect(jkt(second)).toBe(otherKey.jkt);
    const third = await ok(await refresh(web, second.refresh_token));
    expect(third.token_type).toBe("Bearer");
    expect(jkt(third)).toBeUndefined();
  });
});

describe("dpop_jkt: the code bound to a key (RFC 9449 §10)", () => {
  for (const client of ["public", "confidential"] as const) {
    it(`${client} client: redeems only with a proof by that key; a wrong or missing key leaves the code usable`, async () => {
      const c = client === "public" ? spa : web;
      const issued = await code(c, { dpop_jkt: key.jkt });
      await expectError(await redeem(c, issued, otherKey), 400, "invalid_grant", CODE_BOUND);
      await expectError(await redeem(c, issued), 400, "invalid_grant", CODE_BOUND);
      const tokens = await ok(await redeem(c, issued, key));
      expect(jkt(tokens)).toBe(key.jkt);
    });
  }

  it("refuses a malformed dpop_jkt at the authorization endpoint, back at the client", async () => {
    const p = await pkce();
    const res = await new Browser().get(
      authorizeUrl({
        response_type: "code",
        client_id: spa.client_id,
        redirect_uri: REDIRECT,
        code_challenge: p.challenge,
        code_challenge_method: "S256",
        dpop_jkt: "not-a-thumbprint",
        state: "s1",
      }),
    );
    const query = clientRedirect(res, REDIRECT);
    expect(Object.fromEntries(query)).toMatchObject({
      error: "invalid_request",
      error_description: "dpop_jkt must be a base64url SHA-256 JWK thumbprint (43 characters)",
      state: "s1",
    });
  });
});
