/**
 * A confidential client identified by its Client ID Metadata Document, authenticating with
 * private_key_jwt (RFC 7523 as updated by RFC 10070) through oauth4webapi's PrivateKeyJwt, with its
 * keys at a jwks_uri on a real loopback HTTP server: the code flow through the real pages, client
 * credentials, introspection, and every way an assertion must be refused.
 */
import { base64url, decodeJwt, exportJWK, generateKeyPair, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DocumentServer, startDocumentServer } from "./document-server";
import {
  ALICE,
  type AuthorizationServer,
  type CallbackServer,
  consent,
  landedAt,
  launchBrowser,
  MCP_RESOURCE,
  signIn,
  startCallbackServer,
  startServer,
  stopAll,
  type TestBrowser,
} from "./harness";
import { codeRequest, discover, insecure } from "./oauth4webapi-setup";

const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const KID = "loopback-agent-1";
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

let server: AuthorizationServer;
let docs: DocumentServer;
let callback: CallbackServer;
let browser: TestBrowser;
let as: oauth.AuthorizationServer;
let clientId: string;
let client: oauth.Client;
let key: PrivateKey;
let otherKey: PrivateKey;

beforeAll(async () => {
  [server, docs, callback, browser] = await Promise.all([startServer(), startDocumentServer(), startCallbackServer(), launchBrowser()]);
  as = await discover(server, "oauth2");
  const pair = await generateKeyPair("ES256");
  key = pair.privateKey;
  otherKey = (await generateKeyPair("ES256")).privateKey;
  docs.json(
    "/keys/jwks.json",
    { keys: [{ ...(await exportJWK(pair.publicKey)), kid: KID, alg: "ES256", use: "sig" }] },
    { "Content-Type": "application/jwk-set+json" },
  );
  clientId = `${docs.origin}/agent.json`;
  client = { client_id: clientId };
  docs.json("/agent.json", {
    client_id: clientId,
    client_name: "Keyed Loopback Agent",
    token_endpoint_auth_method: "private_key_jwt",
    jwks_uri: `${docs.origin}/keys/jwks.json`,
    grant_types: ["authorization_code", "client_credentials"],
    redirect_uris: [callback.redirectUri],
    scope: "mcp:read",
  });
});

afterAll(() => stopAll(server, browser, callback, docs));

type Modify = (header: Record<string, unknown>, payload: Record<string, unknown>) => void;

/** Overrides these claims of the assertion. */
const claims =
  (values: Record<string, unknown>): Modify =>
  (_header, payload) => {
    Object.assign(payload, values);
  };
/** Overrides these header parameters of the assertion. */
const headers =
  (values: Record<string, unknown>): Modify =>
  (header) => {
    Object.assign(header, values);
  };

/** oauth4webapi's private_key_jwt, optionally changing the assertion right before it is signed. */
function privateKeyJwt(modify?: Modify, signWith = key): oauth.ClientAuth {
  return oauth.PrivateKeyJwt({ key: signWith, kid: KID }, modify ? { [oauth.modifyAssertion]: modify } : {});
}

function clientCredentials(auth: oauth.ClientAuth): Promise<Response> {
  return oauth.clientCredentialsGrantRequest(as, client, auth, { resource: MCP_RESOURCE, scope: "mcp:read" }, insecure);
}

/** A token request carrying a hand-made client assertion (for what oauth4webapi cannot be made to send). */
function withAssertion(assertion: string): Promise<Response> {
  return server.fetch("/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion }),
  });
}

async function expectInvalidClient(response: Response, description: string): Promise<void> {
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toBeNull();
  expect(await response.json()).toEqual({ error: "invalid_client", error_description: description });
}

const now = () => Math.floor(Date.now() / 1000);

describe("what oauth4webapi sends", () => {
  it("signs with aud = the issuer identifier as a plain string, which RFC 10070 requires, and gets a token", async () => {
    const seen: Array<{ header: Record<string, unknown>; payload: Record<string, unknown> }> = [];
    const response = await clientCredentials(privateKeyJwt((header, payload) => void seen.push({ header: { ...header }, payload: { ...payload } })));
    expect(response.status).toBe(200);
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: clientId, client_id: clientId, aud: MCP_RESOURCE, scope: "mcp:read" });
    expect(seen).toHaveLength(1);
    const { header, payload } = seen[0] as (typeof seen)[number];
    expect(payload.aud).toBe(server.issuer);
    expect(typeof payload.aud).toBe("string");
    expect(payload).toMatchObject({ iss: clientId, sub: clientId, jti: expect.any(String) });
    expect((payload.exp as number) - (payload.iat as number)).toBe(60);
    // oauth4webapi does not (yet) set the RFC 10070 explicit type; an untyped assertion is still accepted.
    expect(header).toEqual({ alg: "ES256", kid: KID });
  });

  it("is accepted with the explicit type client-authentication+jwt", async () => {
    const response = await clientCredentials(privateKeyJwt(headers({ typ: "client-authentication+jwt" })));
    expect(response.status).toBe(200);
  });
});

describe("authorization code through the real pages, authenticated by private_key_jwt", () => {
  it("completes the flow; the consent page shows the document's host; introspection works too", async () => {
    const { url, verifier, state } = await codeRequest(as, {
      client_id: clientId,
      redirect_uri: callback.redirectUri,
      resource: MCP_RESOURCE,
      scope: "mcp:read",
    });
    const page = await browser.newPage();
    expect((await page.goto(url))?.status()).toBe(200);
    await signIn(page, ALICE);
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe(`Allow Keyed Loopback Agent from ${docs.host} to access your account?`);
    expect(await consent(page, "Allow")).toContain("Self-asserted");
    const params = oauth.validateAuthResponse(as, client, await landedAt(page, callback), state);
    const response = await oauth.authorizationCodeGrantRequest(as, client, privateKeyJwt(), params, callback.redirectUri, verifier, {
      ...insecure,
      additionalParameters: { resource: MCP_RESOURCE },
    });
    expect(response.status).toBe(200);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: clientId, sub: ALICE.sub, aud: MCP_RESOURCE });

    const introspection = await oauth.introspectionRequest(as, client, privateKeyJwt(), tokens.access_token, insecure);
    expect(await oauth.processIntrospectionResponse(as, client, introspection)).toMatchObject({ active: true, client_id: clientId, sub: ALICE.sub });
  });
});

describe("assertions that must be refused (401 invalid_client)", () => {
  const AUD = "the client assertion's aud must be the issuer identifier, as a single string (RFC 10070)";
  const SIGNATURE = "the client assertion's signature does not verify with the client's registered keys";
  const ALG = "the client assertion's alg is not allowed; use ES256, ES384, PS256, PS384, PS512, RS256, RS384, RS512, EdDSA, Ed25519";

  it("a replayed jti", async () => {
    const jti = `replay-${crypto.randomUUID()}`;
    const fixed = privateKeyJwt(claims({ jti }));
    expect((await clientCredentials(fixed)).status).toBe(200);
    await expectInvalidClient(await clientCredentials(fixed), "the client assertion was already used (its jti is single-use)");
  });

  it("aud = the token endpoint URL", async () => {
    await expectInvalidClient(await clientCredentials(privateKeyJwt(claims({ aud: as.token_endpoint }))), AUD);
  });

  it("aud = an array, even one holding only the issuer", async () => {
    await expectInvalidClient(await clientCredentials(privateKeyJwt(claims({ aud: [server.issuer] }))), AUD);
    await expectInvalidClient(await clientCredentials(privateKeyJwt(claims({ aud: [server.issuer, as.token_endpoint] }))), AUD);
  });

  it("an expired assertion", async () => {
    const expired = claims({ iat: now() - 600, nbf: now() - 600, exp: now() - 300 });
    await expectInvalidClient(await clientCredentials(privateKeyJwt(expired)), "the client assertion has expired");
  });

  it("a lifetime longer than allowed", async () => {
    await expectInvalidClient(
      await clientCredentials(privateKeyJwt(claims({ exp: now() + 3600 }))),
      "the client assertion's lifetime must not exceed 300 seconds",
    );
  });

  it("alg none", async () => {
    const part = (o: unknown) => base64url.encode(JSON.stringify(o));
    const claims = { iss: clientId, sub: clientId, aud: server.issuer, iat: now(), exp: now() + 60, jti: crypto.randomUUID() };
    await expectInvalidClient(await withAssertion(`${part({ alg: "none" })}.${part(claims)}.`), ALG);
  });

  it("HS256 (a public key must never act as an HMAC secret)", async () => {
    const jwks = await (await fetch(`${docs.origin}/keys/jwks.json`)).text();
    const hs = await new SignJWT({ iss: clientId, sub: clientId, aud: server.issuer, jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: "HS256", kid: KID })
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign(new TextEncoder().encode(jwks));
    await expectInvalidClient(await withAssertion(hs), ALG);
  });

  it("an unknown kid", async () => {
    await expectInvalidClient(await clientCredentials(privateKeyJwt(headers({ kid: "unknown-kid" }))), SIGNATURE);
  });

  it("the wrong key", async () => {
    await expectInvalidClient(await clientCredentials(privateKeyJwt(undefined, otherKey)), SIGNATURE);
  });

  it("iss and sub that are not the client_id", async () => {
    await expectInvalidClient(
      await clientCredentials(privateKeyJwt(claims({ sub: `${docs.origin}/someone-else.json` }))),
      "the client assertion's iss and sub must both be the client_id",
    );
  });

  it("keys at a jwks_uri that breaks the fetch rules", async () => {
    const redirectingId = `${docs.origin}/redirecting-keys-agent.json`;
    docs.route("/keys/moved.json", (_req, res) => {
      res.writeHead(301, { Location: "/keys/jwks.json" });
      res.end();
    });
    docs.json("/redirecting-keys-agent.json", {
      client_id: redirectingId,
      token_endpoint_auth_method: "private_key_jwt",
      jwks_uri: `${docs.origin}/keys/moved.json`,
      grant_types: ["client_credentials"],
    });
    const response = await oauth.clientCredentialsGrantRequest(as, { client_id: redirectingId }, privateKeyJwt(), { resource: MCP_RESOURCE }, insecure);
    await expectInvalidClient(response, "the client's jwks_uri could not be used: it answered with a redirect (HTTP 301), which is not followed");
  });
});
