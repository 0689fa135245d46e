import { exportJWK, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { obtainCode, pkce } from "./browser";
import { adminCall, basic, call, createClient, expectError, MCP_RESOURCE, postForm } from "./helpers";

describe("admin API", () => {
  it("refuses requests without the admin token", async () => {
    const none = await call("/admin/clients/x");
    // RFC 6750 §3.1: no credentials, no error code in the challenge; wrong ones name it.
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="latchkey-admin"');
    await expectError(none, 401, "invalid_token", "a valid admin bearer token is required");
    const wrong = await call("/admin/clients/x", { headers: { Authorization: "Bearer wrong" } });
    expect(wrong.headers.get("www-authenticate")).toBe('Bearer realm="latchkey-admin", error="invalid_token"');
    await expectError(wrong, 401, "invalid_token", "a valid admin bearer token is required");
  });

  it("creates, reads and deletes a confidential client; the secret is returned once", async () => {
    const created = await createClient({
      client_name: "Svc",
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "client_secret_post",
      scope: "mcp:read",
    });
    expect(created).toMatchObject({
      client_name: "Svc",
      token_endpoint_auth_method: "client_secret_post",
      grant_types: ["client_credentials"],
      response_types: [],
      client_secret_expires_at: 0,
    });
    expect(created.client_id).toMatch(/^lk_[A-Za-z0-9_-]{22}$/);
    expect(created.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const read = await adminCall("GET", `/clients/${created.client_id}`);
    const info = (await read.json()) as Record<string, unknown>;
    expect(info.client_id).toBe(created.client_id);
    expect(info).not.toHaveProperty("client_secret");
    expect(info).not.toHaveProperty("client_secret_hash");
    expect((await adminCall("DELETE", `/clients/${created.client_id}`)).status).toBe(204);
    await expectError(await adminCall("GET", `/clients/${created.client_id}`), 404, "not_found", "no such client");
    await expectError(await adminCall("DELETE", `/clients/${created.client_id}`), 404, "not_found", "no such client");
    // The deleting isolate forgets the client at once.
    await expectError(
      await postForm("/token", { grant_type: "client_credentials", client_id: created.client_id, client_secret: created.client_secret as string }),
      401,
      "invalid_client",
      "client authentication failed",
    );
  });

  it("rejects invalid client metadata with RFC 7591 errors", async () => {
    await expectError(
      await adminCall("POST", "/clients", { redirect_uris: ["http://app.example/cb"] }),
      400,
      "invalid_redirect_uri",
      "redirect_uri 'http://app.example/cb' must use https (http is allowed only for loopback)",
    );
    await expectError(
      await adminCall("POST", "/clients", { redirect_uris: ["https://app.example/cb#frag"] }),
      400,
      "invalid_redirect_uri",
      "redirect_uri 'https://app.example/cb#frag' must not contain a fragment",
    );
    await expectError(
      await adminCall("POST", "/clients", { redirect_uris: ["myapp:/cb"] }),
      400,
      "invalid_redirect_uri",
      "redirect_uri 'myapp:/cb' private-use schemes must be reverse domain names",
    );
    await expectError(
      await adminCall("POST", "/clients", { grant_types: ["client_credentials"], token_endpoint_auth_method: "none" }),
      400,
      "invalid_client_metadata",
      "client_credentials requires a confidential client (not token_endpoint_auth_method none)",
    );
    await expectError(await adminCall("POST", "/clients", { grant_types: ["implicit"] }), 400, "invalid_client_metadata", /^grant_types\.0: /);
    await expectError(
      await adminCall("POST", "/clients", { grant_types: ["authorization_code"] }),
      400,
      "invalid_redirect_uri",
      "redirect_uris is required for the authorization_code grant",
    );
    await expectError(
      await adminCall("POST", "/clients", { response_types: ["token"], redirect_uris: ["https://a.example/cb"] }),
      400,
      "invalid_client_metadata",
      "response_types.0: only the code response type is supported",
    );
  });

  it("refuses redirect URIs that are not RFC 3986 URIs, or whose path has dot segments the parser would resolve", async () => {
    const characters =
      "must contain only RFC 3986 characters (percent-encode spaces, quotes, apostrophes, backslashes, control and non-ASCII characters, and follow each % by two hex digits)";
    const dots = "must not contain dot segments (/./ or /../)";
    const cases: Array<[uri: string, shown: string, problem: string]> = [
      ["https://a.example/cb?x=%G1", "https://a.example/cb?x=%G1", characters],
      ["https://a.example/%", "https://a.example/%", characters],
      ["https://a.example/cb?%E0%A4%A", "https://a.example/cb?%E0%A4%A", characters],
      ["https://exämple.com/cb", "https://ex?mple.com/cb", characters],
      ['https://a.example/"\\\u0001', "https://a.example/'/?", characters],
      ["https://a.example/c b", "https://a.example/c b", characters],
      ["https://a.example/cb?x='1'", "https://a.example/cb?x='1'", characters],
      ["https://a.example/a/../cb", "https://a.example/a/../cb", dots],
      ["https://a.example/./cb", "https://a.example/./cb", dots],
      ["https://a.example/%2E%2e/cb", "https://a.example/%2E%2e/cb", dots],
      ["com.example.app:/cb/..", "com.example.app:/cb/..", dots],
      [
        "https://a.example/cb?iss=https://evil.example",
        "https://a.example/cb?iss=https://evil.example",
        "must not carry the response parameter iss in its query",
      ],
      ["https://a.example/cb?x=1&state=s", "https://a.example/cb?x=1&state=s", "must not carry the response parameter state in its query"],
      ["https://a.example/cb?code=c", "https://a.example/cb?code=c", "must not carry the response parameter code in its query"],
    ];
    for (const [uri, shown, problem] of cases) {
      await expectError(await adminCall("POST", "/clients", { redirect_uris: [uri] }), 400, "invalid_redirect_uri", `redirect_uri '${shown}' ${problem}`);
    }
    // Escapes, and dots that are not whole path segments or that sit in the query, are fine.
    const redirect_uris = ["https://a.example/cb?%E0%A4%A8", "https://a.example/v1.0/..cb?next=/../x", "http://127.0.0.1:8080/cb", "com.example.app:/cb"];
    const created = await createClient({ redirect_uris, application_type: "native", token_endpoint_auth_method: "none" });
    expect(created.redirect_uris).toEqual(redirect_uris);
  });

  it("refuses jwks keys jose cannot import, naming the key, instead of failing every client assertion later", async () => {
    const ec = await exportJWK((await generateKeyPair("ES256", { extractable: true })).publicKey);
    const ed = await exportJWK((await generateKeyPair("Ed25519", { extractable: true })).publicKey);
    const zero = "A".repeat(43);
    const cases: Array<[keys: object[], description: string]> = [
      [[{ kty: "EC", crv: "P-256", x: "bad", y: "bad" }], "jwks.keys.0: is not a usable ES256 public key"],
      [[{ kty: "EC", crv: "P-256", x: zero, y: zero }], "jwks.keys.0: is not a usable ES256 public key"],
      [[ec, { kty: "OKP", crv: "Ed25519", x: "bad" }], "jwks.keys.1: is not a usable Ed25519 public key"],
      [[{ ...ec, alg: "RS256" }], "jwks.keys.0: is not a usable RS256 public key"],
      [[{ ...ec, alg: "none" }], "jwks.keys.0: is not a usable none public key"],
      [[{ kty: "OKP", crv: "X25519", x: ed.x as string }], "jwks.keys.0: has no alg, and its kty and crv imply no signing algorithm"],
    ];
    const metadata = (keys: object[]) => ({ grant_types: ["client_credentials"], token_endpoint_auth_method: "private_key_jwt", jwks: { keys } });
    for (const [keys, description] of cases)
      await expectError(await adminCall("POST", "/clients", metadata(keys)), 400, "invalid_client_metadata", description);
    // Keys with and without alg, as their kty and crv imply it.
    const created = await createClient(metadata([ec, { ...ec, alg: "ES256", kid: "2" }, ed]));
    expect(created.jwks).toEqual({ keys: [ec, { ...ec, alg: "ES256", kid: "2" }, ed] });
  });

  it("manages resources", async () => {
    const res = await adminCall("POST", "/resources", { resource: "https://api.example/v1", name: "API", scopes_supported: ["read", "write", "read"] });
    expect(res.status).toBe(201);
    const resource = (await res.json()) as { id: string; scopes_supported: string[] };
    expect(resource).toMatchObject({ resource: "https://api.example/v1", name: "API", scopes_supported: ["read", "write"] });
    expect((await (await adminCall("GET", `/resources/${resource.id}`)).json()) as object).toMatchObject({ resource: "https://api.example/v1" });
    await expectError(
      await adminCall("POST", "/resources", { resource: "https://api.example/v1", name: "Again", scopes_supported: [] }),
      400,
      "invalid_request",
      "resource https://api.example/v1 is already registered",
    );
    await expectError(
      await adminCall("POST", "/resources", { resource: "https://api.example/#x", name: "Bad", scopes_supported: [] }),
      400,
      "invalid_request",
      "resource: must not contain a fragment (RFC 8707 section 2)",
    );
    expect((await adminCall("DELETE", `/resources/${resource.id}`)).status).toBe(204);
    await expectError(await adminCall("GET", `/resources/${resource.id}`), 404, "not_found", "no such resource");
  });

  it("replaces a resource's name, scopes and opening with PUT, keeping its identifier and attestation policy; the change takes effect", async () => {
    const resource = "https://api.example/replaced";
    const { id } = (await (await adminCall("POST", "/resources", { resource, name: "Before", scopes_supported: ["r:read"] })).json()) as { id: string };
    expect((await adminCall("PUT", `/policies/resources/${id}`, { unattested_max_token_lifetime: 60 })).status).toBe(200);
    const put = await adminCall("PUT", `/resources/${id}`, {
      resource,
      name: "After",
      scopes_supported: ["r:read", "r:write"],
      self_registered_client_credentials_scopes: ["r:read"],
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({
      id,
      resource,
      name: "After",
      scopes_supported: ["r:read", "r:write"],
      attestation_policy: { unattested_max_token_lifetime: 60 },
    });
    // A client that registered itself now gets the opened scope there.
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" }),
    });
    const self = (await registered.json()) as { client_id: string; client_secret: string };
    const token = await postForm("/token", { grant_type: "client_credentials", resource }, { Authorization: basic(self.client_id, self.client_secret) });
    expect(((await token.json()) as { scope: string }).scope).toBe("r:read");
    await expectError(
      await adminCall("PUT", `/resources/${id}`, { resource: "https://api.example/other", name: "X", scopes_supported: [] }),
      400,
      "invalid_request",
      "resource (the identifier) cannot change; register another resource for another identifier",
    );
    await expectError(await adminCall("PUT", "/resources/res_nope", { resource, name: "X", scopes_supported: [] }), 404, "not_found", "no such resource");
  });

  it("manages users and never returns password hashes", async () => {
    const res = await adminCall("POST", "/users", { email: "Carol@Example.com", password: "carol-password-1", name: "Carol" });
    expect(res.status).toBe(201);
    const user = (await res.json()) as Record<string, unknown>;
    expect(user).toEqual({ id: expect.stringMatching(/^usr_/), email: "carol@example.com", name: "Carol", created_at: expect.any(Number) });
    await expectError(
      await adminCall("POST", "/users", { email: "carol@example.com", password: "another-password", name: "C" }),
      400,
      "invalid_request",
      "a user with email carol@example.com already exists",
    );
    await expectError(
      await adminCall("POST", "/users", { email: "dave@example.com", password: "short", name: "Dave" }),
      400,
      "invalid_request",
      "password: must be at least 12 characters",
    );
    expect(await (await adminCall("GET", `/users/${user.id}`)).json()).toEqual(user);
    expect((await adminCall("DELETE", `/users/${user.id}`)).status).toBe(204);
    await expectError(await adminCall("GET", `/users/${user.id}`), 404, "not_found", "no such user");
  });

  it("rejects non-JSON bodies", async () => {
    const res = await call("/admin/users", { method: "POST", headers: { Authorization: "Bearer dev-admin-token", "Content-Type": "text/plain" }, body: "x" });
    await expectError(res, 400, "invalid_request", "the request body must be application/json");
    const bad = await call("/admin/users", {
      method: "POST",
      headers: { Authorization: "Bearer dev-admin-token", "Content-Type": "application/json" },
      body: "{",
    });
    await expectError(bad, 400, "invalid_request", "the request body is not valid JSON");
  });

  it("takes only a JSON object as a body: an array used to create a usable initial access token", async () => {
    const post = (path: string, body: string, contentType = "application/json") =>
      call(`/admin${path}`, { method: "POST", headers: { Authorization: "Bearer dev-admin-token", "Content-Type": contentType }, body });
    const nested = `${"[".repeat(500)}${"]".repeat(500)}`;
    for (const body of ["[]", nested, "null", '"x"', "1"]) {
      await expectError(await post("/initial-access-tokens", body), 400, "invalid_request", "the request body must be a JSON object");
    }
    await expectError(await post("/clients", "[]"), 400, "invalid_request", "the request body must be a JSON object");
    await expectError(await post("/attesters", "[]"), 400, "invalid_request", "the request body must be a JSON object");
  });

  it("matches the media type exactly, not by prefix; parameters and case do not matter", async () => {
    const post = (contentType: string) =>
      call("/admin/initial-access-tokens", { method: "POST", headers: { Authorization: "Bearer dev-admin-token", "Content-Type": contentType }, body: "{}" });
    for (const contentType of ["application/jsonx", "application/json-patch+json", "application/json5; charset=utf-8"]) {
      await expectError(await post(contentType), 400, "invalid_request", "the request body must be application/json");
    }
    expect((await post(" Application/JSON ; charset=utf-8")).status).toBe(201);
  });

  it("answers 405 with Allow to another method on a known path, after checking the admin token", async () => {
    const cases: Array<[method: string, path: string, allow: string]> = [
      ["PATCH", "/clients/lk_x", "GET, DELETE"],
      ["PUT", "/clients/lk_x", "GET, DELETE"],
      ["PUT", "/users/usr_x", "GET, DELETE"],
      ["PATCH", "/resources/res_x", "GET, PUT, DELETE"],
      ["GET", "/initial-access-tokens", "POST"],
      ["PATCH", "/policies/clients/lk_x", "GET, PUT, DELETE"],
    ];
    for (const [method, path, allow] of cases) {
      const res = await adminCall(method, path);
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
      await expectError(res, 405, "method_not_allowed", `use ${allow}`);
    }
    await expectError(await call("/admin/clients/lk_x", { method: "PATCH" }), 401, "invalid_token", "a valid admin bearer token is required");
    await expectError(await adminCall("PATCH", "/policies/other/x"), 404, "not_found", "no such endpoint");
  });

  it("deleting a user or a client revokes their grants", async () => {
    const REDIRECT = "https://app.example/callback";
    const app = await createClient({
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "client_secret_basic",
    });
    const auth = { Authorization: basic(app.client_id, app.client_secret as string) };
    const grant = async () => {
      const p = await pkce();
      const { code } = await obtainCode(
        {
          response_type: "code",
          client_id: app.client_id,
          redirect_uri: REDIRECT,
          code_challenge: p.challenge,
          code_challenge_method: "S256",
          resource: MCP_RESOURCE,
        },
        REDIRECT,
      );
      return (await (await postForm("/token", { grant_type: "authorization_code", code, code_verifier: p.verifier }, auth)).json()) as {
        refresh_token: string;
      };
    };
    const first = await grant();
    const second = await grant();
    expect((await adminCall("DELETE", `/clients/${app.client_id}`)).status).toBe(204);
    // The client is gone, so it cannot even authenticate; its grants are revoked in their Durable Objects.
    await expectError(
      await postForm("/token", { grant_type: "refresh_token", refresh_token: first.refresh_token }, auth),
      401,
      "invalid_client",
      "client authentication failed",
    );
    const { env } = await import("cloudflare:workers");
    for (const t of [first, second]) {
      const id = t.refresh_token.slice(4, 68);
      expect(await env.GRANTS.get(env.GRANTS.idFromString(id)).status({ now: Math.floor(Date.now() / 1000) })).toEqual({ active: false });
    }
  });
});
