/**
 * Client ID Metadata Documents end to end: the Worker under local workerd fetches documents from a real
 * loopback HTTP server, so every outbound-fetch rule meets real HTTP (redirects, sizes, gzip, slowness,
 * content types, statuses); a public client identified by its URL completes the code flow through the
 * real pages in Chromium, driven by oauth4webapi; an agent whose document registers httpsig_client_auth
 * gets a key-bound client_credentials token by signing its request (RFC 9421).
 */
import { gzipSync } from "node:zlib";
import { decodeJwt, exportJWK, generateKeyPair, type JWK } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SignRequestOptions, signRequest } from "../../workers/httpsig/sign";
import { type DocumentServer, slowly, startDocumentServer, trickle } from "./document-server";
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

/** A short deadline, so that the slow-server tests stay quick. */
const TIMEOUT_MS = 1000;

let server: AuthorizationServer;
let docs: DocumentServer;
let callback: CallbackServer;
let browser: TestBrowser;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  [server, docs, callback, browser] = await Promise.all([
    startServer({ OUTBOUND_FETCH_TIMEOUT_MS: String(TIMEOUT_MS) }),
    startDocumentServer(),
    startCallbackServer(),
    launchBrowser(),
  ]);
  as = await discover(server, "oauth2");
});

afterAll(() => stopAll(server, browser, callback, docs));

/** A valid public client's document for the client_id URL at `path`. */
function document(path: string, extra: Record<string, unknown> = {}) {
  return {
    client_id: `${docs.origin}${path}`,
    client_name: "Loopback Agent",
    redirect_uris: [callback.redirectUri],
    grant_types: ["authorization_code"],
    scope: "mcp:read",
    ...extra,
  };
}

/**
 * The authorization endpoint must show its error page (400, HTML, no redirect) with `message`, and the
 * token endpoint must answer 401 invalid_client with the same description.
 */
async function expectRefused(clientId: string, message: string): Promise<void> {
  const authorize = new URL(as.authorization_endpoint as string);
  authorize.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: callback.redirectUri,
    code_challenge: "a".repeat(43),
    code_challenge_method: "S256",
  }).toString();
  const page = await fetch(authorize, { redirect: "manual" });
  expect(page.status).toBe(400);
  expect(page.headers.get("location")).toBeNull();
  expect(page.headers.get("content-type")).toMatch(/^text\/html/);
  expect(await page.text()).toContain(message.replaceAll("'", "&#39;").replaceAll('"', "&quot;"));

  const token = await server.fetch("/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code: "x", code_verifier: "v".repeat(43), client_id: clientId }),
  });
  expect(token.status).toBe(401);
  expect(await token.json()).toEqual({ error: "invalid_client", error_description: message });
}

describe("the outbound-fetch rules against a real HTTP server", () => {
  it("serves a valid document (the control for every refusal below)", async () => {
    docs.json("/ok.json", document("/ok.json"));
    const res = await server.fetch("/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: "x", code_verifier: "v".repeat(43), client_id: `${docs.origin}/ok.json` }),
    });
    // The client was found and authenticated; only the made-up code fails.
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_grant");
  });

  it("refuses a redirect and does not follow it", async () => {
    docs.json("/target.json", document("/redirect.json"));
    docs.route("/redirect.json", (_req, res) => {
      res.writeHead(302, { Location: "/target.json" });
      res.end();
    });
    await expectRefused(`${docs.origin}/redirect.json`, "the client's metadata document answered with a redirect (HTTP 302), which is not followed");
    expect(docs.requested).not.toContain("/target.json");
  });

  it("refuses a document over 5 KB", async () => {
    docs.json("/big.json", document("/big.json", { padding: "x".repeat(6000) }));
    await expectRefused(`${docs.origin}/big.json`, "the client's metadata document is larger than 5120 bytes");
  });

  it("refuses a document over 5 KB once decompressed, though tiny on the wire (gzip bomb)", async () => {
    const body = gzipSync(JSON.stringify(document("/bomb.json", { padding: " ".repeat(200_000) })));
    expect(body.length).toBeLessThan(1024);
    docs.route("/bomb.json", (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Encoding": "gzip", "Content-Length": String(body.length) });
      res.end(body);
    });
    await expectRefused(`${docs.origin}/bomb.json`, "the client's metadata document is larger than 5120 bytes");
  });

  it("accepts a small gzip-compressed document (decompression is the runtime's, not skipped)", async () => {
    const body = gzipSync(JSON.stringify(document("/small-gzip.json")));
    docs.route("/small-gzip.json", (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Encoding": "gzip" });
      res.end(body);
    });
    const res = await server.fetch("/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: "x", code_verifier: "v".repeat(43), client_id: `${docs.origin}/small-gzip.json` }),
    });
    expect(((await res.json()) as { error: string }).error).toBe("invalid_grant");
  });

  it("gives up on a server that answers after the deadline", async () => {
    docs.route(
      "/slow.json",
      slowly(TIMEOUT_MS * 2, (_req, res) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify(document("/slow.json")));
      }),
    );
    const started = Date.now();
    await expectRefused(`${docs.origin}/slow.json`, `the client's metadata document did not answer within ${TIMEOUT_MS} ms`);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS * 2 * 2);
  });

  it("gives up on a body that trickles past the deadline (the deadline covers the body)", async () => {
    docs.route("/trickle.json", trickle(document("/trickle.json"), 50));
    await expectRefused(`${docs.origin}/trickle.json`, `the client's metadata document did not answer within ${TIMEOUT_MS} ms`);
  });

  it("refuses a content type that is not JSON", async () => {
    docs.route("/html.json", (_req, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(JSON.stringify(document("/html.json")));
    });
    await expectRefused(`${docs.origin}/html.json`, "the client's metadata document is not JSON (Content-Type 'text/html')");
  });

  it("accepts application/<x>+json", async () => {
    docs.json("/typed.json", document("/typed.json"), { "Content-Type": "application/cimd+json" });
    const res = await server.fetch("/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: "x", code_verifier: "v".repeat(43), client_id: `${docs.origin}/typed.json` }),
    });
    expect(((await res.json()) as { error: string }).error).toBe("invalid_grant");
  });

  it("refuses any status but 200", async () => {
    for (const status of [201, 404, 500]) {
      docs.route(`/status-${status}.json`, (_req, res) => {
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(JSON.stringify(document(`/status-${status}.json`)));
      });
      await expectRefused(`${docs.origin}/status-${status}.json`, `the client's metadata document answered HTTP ${status}, not 200`);
    }
  });

  it("refuses a document whose client_id is not exactly its URL", async () => {
    docs.json("/mismatch.json", document("/other.json"));
    await expectRefused(`${docs.origin}/mismatch.json`, "the client's metadata document is invalid: its client_id is not exactly the URL it was fetched from");
    docs.json("/trailing.json", { ...document("/trailing.json"), client_id: `${docs.origin}/trailing.json/` });
    await expectRefused(`${docs.origin}/trailing.json`, "the client's metadata document is invalid: its client_id is not exactly the URL it was fetched from");
  });

  it("refuses private and special-use address literals, however they are spelled, without fetching", async () => {
    const cases: Array<[string, string]> = [
      ["https://10.0.0.1/client.json", "private-use"],
      ["https://192.168.1.20/client.json", "private-use"],
      ["https://169.254.169.254/latest/meta-data/", "link-local"],
      ["https://0xa9fea9fe/latest/meta-data/", "link-local"],
      ["https://2852039166/latest/meta-data/", "link-local"],
      ["https://0251.0376.0251.0376/latest/meta-data/", "link-local"],
      ["https://100.64.0.1/client.json", "shared address space (CGNAT)"],
      ["https://0.0.0.0/client.json", "this network"],
      ["https://[fd00::1]/client.json", "not global unicast (loopback, IPv4-mapped, unique local, link-local, multicast, ...)"],
      ["https://[::ffff:127.0.0.1]/client.json", "not global unicast (loopback, IPv4-mapped, unique local, link-local, multicast, ...)"],
      ["https://[::ffff:169.254.169.254]/client.json", "not global unicast (loopback, IPv4-mapped, unique local, link-local, multicast, ...)"],
    ];
    for (const [clientId, block] of cases) await expectRefused(clientId, `the client_id URL must not point to a special-use IP address (${block})`);
  });

  it("refuses a fragment and userinfo without fetching", async () => {
    docs.json("/clean.json", document("/clean.json"));
    const before = docs.requested.length;
    await expectRefused(`${docs.origin}/clean.json#frag`, "the client_id URL must not contain a fragment");
    await expectRefused(`http://user:secret@${docs.host}/clean.json`, "the client_id URL must not contain user information");
    await expectRefused(`http://user@${docs.host}/clean.json`, "the client_id URL must not contain user information");
    expect(docs.requested.length).toBe(before);
  });

  it("refuses plain http except on loopback, and a server that is not there", async () => {
    await expectRefused("http://agent.example/client.json", "the client_id URL must use https");
    await expectRefused("http://127.0.0.1:1/client.json", "the client's metadata document could not be fetched");
  });
});

describe("a public client identified by its metadata document, through the real pages", () => {
  it("completes authorization code + PKCE with oauth4webapi; consent shows the host, self-asserted", async () => {
    const clientId = `${docs.origin}/public-client.json`;
    docs.json("/public-client.json", document("/public-client.json"), { "Cache-Control": "max-age=300" });
    const client: oauth.Client = { client_id: clientId };
    const { url, verifier, state } = await codeRequest(as, {
      client_id: clientId,
      redirect_uri: callback.redirectUri,
      resource: MCP_RESOURCE,
      scope: "mcp:read",
    });
    const page = await browser.newPage();
    expect((await page.goto(url))?.status()).toBe(200);
    await signIn(page, ALICE);
    const heading = await page.getByRole("heading", { level: 1 }).textContent();
    expect(heading).toBe(`Allow Loopback Agent from ${docs.host} to access your account?`);
    const text = await consent(page, "Allow");
    expect(text).toContain(`Self-asserted: this application describes itself in a document published at ${docs.host}`);
    const landed = await landedAt(page, callback);

    const params = oauth.validateAuthResponse(as, client, landed, state);
    const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, callback.redirectUri, verifier, {
      ...insecure,
      additionalParameters: { resource: MCP_RESOURCE },
    });
    expect(response.status).toBe(200);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: clientId, sub: ALICE.sub, aud: MCP_RESOURCE, scope: "mcp:read" });
    // The document was fetched once for the whole flow (cached per Cache-Control).
    expect(docs.requested.filter((p) => p === "/public-client.json")).toHaveLength(1);
  });
});

/**
 * `httpsig_client_auth` (README "HTTP message signatures") as an oauth4webapi ClientAuth for the token
 * endpoint: `client_id` in the form body, and an RFC 9421 signature tagged `httpsig-oauth-token-request`
 * covering @method, @target-uri and the Content-Digest of exactly the body oauth4webapi then sends.
 */
function httpSigClientAuth(privateKey: SignRequestOptions["privateKey"], keyid: string): oauth.ClientAuth {
  return async (as, client, body, headers) => {
    body.set("client_id", client.client_id);
    const request = { method: "POST", url: as.token_endpoint as string, headers, body: body.toString() };
    const signed = await signRequest(request, { privateKey, alg: "ES256", keyid, tag: "httpsig-oauth-token-request" });
    for (const [name, value] of signed) headers.set(name, value);
  };
}

describe("a client whose document registers httpsig_client_auth with jwks", () => {
  const clientId = () => `${docs.origin}/httpsig-agent.json`;
  const client = (): oauth.Client => ({ client_id: clientId() });
  const params = { resource: MCP_RESOURCE, scope: "mcp:read" };
  let privateKey: SignRequestOptions["privateKey"];
  let jwk: JWK;

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256", { extractable: true });
    privateKey = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: "agent-sig", alg: "ES256" };
    // The seeded MCP server opens mcp:read to self-registered clients (self_registered_client_credentials_scopes).
    docs.json(
      "/httpsig-agent.json",
      document("/httpsig-agent.json", { grant_types: ["client_credentials"], token_endpoint_auth_method: "httpsig_client_auth", jwks: { keys: [jwk] } }),
    );
  });

  it("is advertised as a token endpoint authentication method", () => {
    expect(as.token_endpoint_auth_methods_supported).toContain("httpsig_client_auth");
  });

  it("earns a signed client_credentials request a token bound to the key (token_type httpsig, cnf.jwk)", async () => {
    const response = await oauth.clientCredentialsGrantRequest(as, client(), httpSigClientAuth(privateKey, "agent-sig"), params, insecure);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    // oauth4webapi accepts only bearer and dpop unless told of another token type (RFC 6749 §7.1).
    const tokens = await oauth.processClientCredentialsResponse(as, client(), response, { recognizedTokenTypes: { httpsig: () => {} } });
    expect(tokens).toEqual({ access_token: expect.any(String), token_type: "httpsig", expires_in: 600, scope: "mcp:read" });
    const claims = decodeJwt(tokens.access_token);
    expect(claims).toMatchObject({ iss: server.issuer, sub: clientId(), aud: MCP_RESOURCE, client_id: clientId(), scope: "mcp:read" });
    // RFC 7800 §3.2: the public key itself, exactly as the document registered it.
    expect(claims.cnf).toEqual({ jwk });
  });

  it("refuses an unsigned request, and one signed by another key under the same kid, with 401 invalid_client", async () => {
    const refusal = async (auth: oauth.ClientAuth) => {
      const response = await oauth.clientCredentialsGrantRequest(as, client(), auth, params, insecure);
      const error = await oauth.processClientCredentialsResponse(as, client(), response).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(oauth.ResponseBodyError);
      const { status, cause } = error as oauth.ResponseBodyError;
      return { status, body: cause };
    };
    expect(await refusal(oauth.None())).toEqual({ status: 401, body: { error: "invalid_client", error_description: "client authentication failed" } });
    const impostor = await generateKeyPair("ES256", { extractable: true });
    expect(await refusal(httpSigClientAuth(impostor.privateKey, "agent-sig"))).toEqual({
      status: 401,
      body: { error: "invalid_client", error_description: "the signature does not verify with the key agent-sig" },
    });
  });
});
