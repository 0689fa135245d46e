import { decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { authorizeUrl, Browser, clientRedirect, decide, follow, pkce, signIn } from "./browser";
import { DpopKey } from "./dpop";
import { type CreatedClient, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

/** RFC 9449 §10.1: a DPoP proof at the pushed authorization request endpoint binds the code to its key. */
const REDIRECT = "https://app.example/callback";
let app: CreatedClient;

beforeAll(async () => {
  app = await createClient({
    client_name: "SPA",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "none",
  });
});

async function push(key: DpopKey | null, challenge: string, extra: Record<string, string> = {}) {
  const headers: Record<string, string> = key ? { DPoP: await key.proof({ htu: `${ISSUER}/par` }) } : {};
  const fields = {
    client_id: app.client_id,
    response_type: "code",
    redirect_uri: REDIRECT,
    code_challenge: challenge,
    code_challenge_method: "S256",
    resource: MCP_RESOURCE,
    scope: "mcp:read",
    state: "s",
    ...extra,
  };
  return postForm("/par", fields, headers);
}

async function codeFor(requestUri: string): Promise<string> {
  const browser = new Browser();
  let res = await browser.get(authorizeUrl({ client_id: app.client_id, request_uri: requestUri }));
  res = await follow(browser, await signIn(browser, res));
  // Consent is remembered after the first test: then the code comes straight back.
  if (res.status === 200) res = await decide(browser, res, "allow");
  return clientRedirect(res, REDIRECT).get("code") as string;
}

function redeem(code: string, verifier: string, proof?: string) {
  return postForm("/token", { grant_type: "authorization_code", code, code_verifier: verifier, client_id: app.client_id }, proof ? { DPoP: proof } : {});
}

describe("DPoP at PAR (RFC 9449 §10.1)", () => {
  it("binds the code to the key that proved at /par: that key redeems it, another key cannot", async () => {
    const key = await DpopKey.generate();
    const thief = await DpopKey.generate();
    const p = await pkce();
    const pushed = await push(key, p.challenge);
    expect(pushed.status).toBe(201);
    expect(pushed.headers.get("dpop-nonce")).toMatch(/^[A-Za-z0-9_-]+$/);
    const { request_uri } = (await pushed.json()) as { request_uri: string };
    const code = await codeFor(request_uri);
    await expectError(await redeem(code, p.verifier, await thief.proof()), 400, "invalid_grant", /DPoP/);
    await expectError(await redeem(code, p.verifier), 400, "invalid_grant", /DPoP/);
    const ok = await redeem(code, p.verifier, await key.proof());
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as { access_token: string; token_type: string };
    expect(body.token_type).toBe("DPoP");
    expect(decodeJwt(body.access_token).cnf).toEqual({ jkt: key.jkt });
  });

  it("accepts dpop_jkt beside a proof by the same key, and refuses one naming another key", async () => {
    const key = await DpopKey.generate();
    const other = await DpopKey.generate();
    const p = await pkce();
    expect((await push(key, p.challenge, { dpop_jkt: key.jkt })).status).toBe(201);
    await expectError(await push(key, p.challenge, { dpop_jkt: other.jkt }), 400, "invalid_request", "dpop_jkt does not match the key of the DPoP proof");
  });

  it("refuses a proof made for another endpoint, with a fresh nonce", async () => {
    const key = await DpopKey.generate();
    const p = await pkce();
    const res = await postForm(
      "/par",
      { client_id: app.client_id, response_type: "code", redirect_uri: REDIRECT, code_challenge: p.challenge, code_challenge_method: "S256" },
      { DPoP: await key.proof({ htu: `${ISSUER}/token` }) },
    );
    expect(res.headers.get("dpop-nonce")).toMatch(/^[A-Za-z0-9_-]+$/);
    await expectError(res, 400, "invalid_dpop_proof", /htu/);
  });

  it("still lets a push without DPoP produce an unbound code", async () => {
    const p = await pkce();
    const pushed = await push(null, p.challenge);
    const { request_uri } = (await pushed.json()) as { request_uri: string };
    const res = await redeem(await codeFor(request_uri), p.verifier);
    expect(((await res.json()) as { token_type: string }).token_type).toBe("Bearer");
  });
});
