import { decodeJwt, decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

let agent: CreatedClient;
let postAgent: CreatedClient;

beforeAll(async () => {
  agent = await createClient({ client_name: "Agent", grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
  postAgent = await createClient({
    client_name: "Agent (post)",
    grant_types: ["client_credentials"],
    token_endpoint_auth_method: "client_secret_post",
    scope: "mcp:read",
  });
});

describe("client_credentials grant (OAuth 2.1 §4.2)", () => {
  it("issues an RFC 9068 access token bound to the resource, with client_secret_basic", async () => {
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({ access_token: expect.any(String), token_type: "Bearer", expires_in: 600, scope: "mcp:read" });
    const token = body.access_token as string;
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: ISSUER, aud: MCP_RESOURCE, sub: agent.client_id, client_id: agent.client_id, scope: "mcp:read" });
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);
    expect(claims.gid).toBeUndefined();
  });

  it("accepts client_secret_post and defaults scope to the client's registered scope", async () => {
    const res = await postForm("/token", {
      grant_type: "client_credentials",
      resource: MCP_RESOURCE,
      client_id: postAgent.client_id,
      client_secret: postAgent.client_secret as string,
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { scope: string }).scope).toBe("mcp:read");
  });

  it("refuses a scope the client did not register", async () => {
    const res = await postForm("/token", {
      grant_type: "client_credentials",
      resource: MCP_RESOURCE,
      scope: "mcp:write",
      client_id: postAgent.client_id,
      client_secret: postAgent.client_secret as string,
    });
    await expectError(res, 400, "invalid_scope", "scope mcp:write is not registered for this client");
  });

  it("refuses an unknown resource with invalid_target", async () => {
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: "https://unknown.example/mcp" },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    await expectError(res, 400, "invalid_target", "resource https://unknown.example/mcp is not known to this authorization server");
  });

  it("refuses openid for a client acting for itself", async () => {
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", scope: "openid" },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    await expectError(res, 400, "invalid_scope", /openid and offline_access concern a user/);
  });

  it("answers a wrong secret with 401 invalid_client and a Basic challenge", async () => {
    const res = await postForm("/token", { grant_type: "client_credentials" }, { Authorization: basic(agent.client_id, "wrong") });
    expect(res.headers.get("www-authenticate")).toBe(`Basic realm="${ISSUER}", charset="UTF-8"`);
    await expectError(res, 401, "invalid_client", "client authentication failed");
  });

  it("answers malformed Basic credentials with 401 invalid_client and the same challenge, realm included (RFC 7617 §2)", async () => {
    const res = await postForm("/token", { grant_type: "client_credentials" }, { Authorization: "Basic !!!" });
    expect(res.headers.get("www-authenticate")).toBe(`Basic realm="${ISSUER}", charset="UTF-8"`);
    await expectError(res, 401, "invalid_client", "malformed HTTP Basic client credentials");
  });

  it("challenges a client that tried the Authorization header without usable Basic credentials (RFC 6749 §5.2)", async () => {
    const challenge = `Basic realm="${ISSUER}", charset="UTF-8"`;
    for (const [header, description] of [
      ["Basic", "malformed HTTP Basic client credentials"],
      [`Basic\t${btoa("a:b")}`, "client authentication failed"],
      ["Bearer some-token", "the Authorization header must carry HTTP Basic client credentials"],
    ]) {
      const res = await postForm("/token", { grant_type: "client_credentials" }, { Authorization: header as string });
      expect(res.headers.get("www-authenticate"), header).toBe(challenge);
      await expectError(res, 401, "invalid_client", description);
    }
  });

  it("answers an unknown client with 401 invalid_client", async () => {
    const res = await postForm("/token", { grant_type: "client_credentials", client_id: "nobody", client_secret: "x" });
    expect(res.headers.get("www-authenticate")).toBeNull();
    await expectError(res, 401, "invalid_client", "client authentication failed");
  });

  it("refuses two authentication methods in one request", async () => {
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", client_secret: "x" },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    await expectError(res, 400, "invalid_request", "more than one client authentication method was used");
  });

  it("refuses the method the client did not register", async () => {
    const res = await postForm("/token", { grant_type: "client_credentials", client_id: agent.client_id, client_secret: agent.client_secret as string });
    await expectError(res, 401, "invalid_client", "client authentication failed");
  });

  it("refuses a repeated parameter", async () => {
    const res = await postForm(
      "/token",
      { grant_type: ["client_credentials", "client_credentials"] },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    await expectError(res, 400, "invalid_request", "parameter grant_type is repeated");
  });

  it("refuses unsupported and unregistered grant types", async () => {
    const auth = { Authorization: basic(agent.client_id, agent.client_secret as string) };
    await expectError(await postForm("/token", { grant_type: "password" }, auth), 400, "unsupported_grant_type", "grant_type password is not supported");
    await expectError(
      await postForm("/token", { grant_type: "refresh_token" }, auth),
      400,
      "unauthorized_client",
      "this client is not registered for the refresh_token grant",
    );
    await expectError(await postForm("/token", {}, auth), 400, "invalid_request", "grant_type is required");
  });

  it("refuses a body that is not form-encoded, and GET", async () => {
    const { call } = await import("./helpers");
    const json = await call("/token", { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } });
    await expectError(json, 400, "invalid_request", "the request body must be application/x-www-form-urlencoded");
    const get = await call("/token");
    expect(get.headers.get("allow")).toBe("POST");
    await expectError(get, 405, "method_not_allowed", "use POST");
  });
});

describe('clients that registered themselves: only what a resource opens to them (OAuth 2.1 §4.2 "previously arranged")', () => {
  const CLOSED = "https://closed.example/api";
  let self: { client_id: string; client_secret: string };

  beforeAll(async () => {
    const created = await adminCall("POST", "/resources", { resource: CLOSED, name: "Closed API", scopes_supported: ["api:read"] });
    expect(created.status).toBe(201);
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" }),
    });
    self = (await registered.json()) as typeof self;
  });

  const token = (params: Record<string, string>) =>
    postForm("/token", { grant_type: "client_credentials", ...params }, { Authorization: basic(self.client_id, self.client_secret) });

  it("gets the scopes the resource opens (the dev example MCP server opens mcp:read), by default or when asked", async () => {
    for (const params of [{ resource: MCP_RESOURCE }, { resource: MCP_RESOURCE, scope: "mcp:read" }] as Record<string, string>[]) {
      const res = await token(params);
      const body = (await res.json()) as { access_token: string; scope: string };
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(body.scope).toBe("mcp:read");
      expect(decodeJwt(body.access_token)).toMatchObject({ aud: MCP_RESOURCE, sub: self.client_id, scope: "mcp:read" });
    }
  });

  it("is refused a scope the resource does not open, and anything from a resource that opens none", async () => {
    await expectError(
      await token({ resource: MCP_RESOURCE, scope: "mcp:read mcp:write" }),
      400,
      "invalid_scope",
      `scope mcp:write of ${MCP_RESOURCE} is not open to clients that registered themselves`,
    );
    const closedDescription = `${CLOSED} grants client_credentials only to clients an administrator registered, and opens no scope to clients that registered themselves`;
    await expectError(await token({ resource: CLOSED }), 400, "unauthorized_client", closedDescription);
    await expectError(await token({ resource: CLOSED, scope: "" }), 400, "unauthorized_client", closedDescription);
    await expectError(
      await token({}),
      400,
      "unauthorized_client",
      "a client that registered itself gets client_credentials tokens only for a resource that opens scopes to it: name one",
    );
  });

  it("is refused when none of the scopes it registered is open and it names none", async () => {
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_types: ["client_credentials"], scope: "mcp:write" }),
    });
    const writer = (await registered.json()) as typeof self;
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE },
      { Authorization: basic(writer.client_id, writer.client_secret) },
    );
    await expectError(res, 400, "invalid_scope", `no scope this client registered is open to it at ${MCP_RESOURCE}; ask for one of: mcp:read`);
  });

  it("an administrator-registered client is not limited by it", async () => {
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: CLOSED },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    expect(res.status).toBe(200);
    expect(((await res.json()) as { scope: string }).scope).toBe("api:read");
  });

  it("validates the opening when the resource is created", async () => {
    const res = await adminCall("POST", "/resources", {
      resource: "https://bad.example/api",
      name: "Bad",
      scopes_supported: ["a"],
      self_registered_client_credentials_scopes: ["b"],
    });
    await expectError(res, 400, "invalid_request", "self_registered_client_credentials_scopes: must name only scopes in scopes_supported");
  });
});

describe("the token rate limit (TOKEN_LIMIT, 200 a minute in tests)", () => {
  it("counts per client and IP: wrong secrets sent from one IP do not lock the client out from another", { timeout: 60_000 }, async () => {
    const attempt = (secret: string, ip: string) =>
      postForm(
        "/token",
        { grant_type: "client_credentials", resource: MCP_RESOURCE },
        { Authorization: basic(agent.client_id, secret), "cf-connecting-ip": ip },
      );
    let last = await attempt("wrong", "198.51.100.7");
    for (let i = 0; i < 400 && last.status !== 429; i++) last = await attempt("wrong", "198.51.100.7");
    await expectError(last, 429, "temporarily_unavailable", "too many requests; try again later");
    expect((await attempt(agent.client_secret as string, "203.0.113.9")).status).toBe(200);
  });
});
