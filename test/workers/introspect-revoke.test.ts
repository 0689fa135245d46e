import { beforeAll, describe, expect, it } from "vitest";
import { obtainCode, pkce } from "./browser";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

const REDIRECT = "https://app.example/callback";
let app: CreatedClient;
let rs: CreatedClient;
let publicApp: CreatedClient;
let agent: CreatedClient;

beforeAll(async () => {
  app = await createClient({
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
  rs = await createClient({ client_name: "Resource server", grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
  publicApp = await createClient({ redirect_uris: [REDIRECT], grant_types: ["authorization_code", "refresh_token"], token_endpoint_auth_method: "none" });
  agent = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
});

const asApp = () => ({ Authorization: basic(app.client_id, app.client_secret as string) });
const asRs = () => ({ Authorization: basic(rs.client_id, rs.client_secret as string) });

async function tokens(client = app) {
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
    },
    REDIRECT,
  );
  const auth: Record<string, string> = client.client_secret ? { Authorization: basic(client.client_id, client.client_secret) } : {};
  const body = { grant_type: "authorization_code", code, code_verifier: p.verifier, ...(client.client_secret ? {} : { client_id: client.client_id }) };
  return (await (await postForm("/token", body, auth)).json()) as { access_token: string; refresh_token: string };
}

describe("introspection (RFC 7662)", () => {
  it("describes an active access token to an authenticated resource server", async () => {
    const t = await tokens();
    const res = await postForm("/introspect", { token: t.access_token }, asRs());
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toEqual({
      active: true,
      iss: ISSUER,
      sub: "usr_dev_alice",
      aud: MCP_RESOURCE,
      client_id: app.client_id,
      token_type: "Bearer",
      scope: "mcp:read",
      exp: expect.any(Number),
      iat: expect.any(Number),
      jti: expect.any(String),
      auth_time: expect.any(Number),
    });
  });

  it("describes an active refresh token, and not its rotated predecessor", async () => {
    const t = await tokens();
    const res = await postForm("/introspect", { token: t.refresh_token, token_type_hint: "refresh_token" }, asApp());
    expect(await res.json()).toEqual({
      active: true,
      iss: ISSUER,
      sub: "usr_dev_alice",
      client_id: app.client_id,
      scope: "mcp:read",
      aud: MCP_RESOURCE,
      iat: expect.any(Number),
      exp: expect.any(Number),
    });
    await postForm("/token", { grant_type: "refresh_token", refresh_token: t.refresh_token }, asApp());
    expect(await (await postForm("/introspect", { token: t.refresh_token }, asApp())).json()).toEqual({ active: false });
  });

  it("describes a token only to those allowed to see it (§2.2): its own client, and administrator-registered ones for access tokens", async () => {
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" }),
    });
    const self = (await registered.json()) as { client_id: string; client_secret: string };
    const asSelf = { Authorization: basic(self.client_id, self.client_secret) };
    const t = await tokens();
    expect(await (await postForm("/introspect", { token: t.access_token }, asSelf)).json()).toEqual({ active: false });
    expect(await (await postForm("/introspect", { token: t.refresh_token }, asSelf)).json()).toEqual({ active: false });
    // A refresh token is only ever sent by its own client: not even a resource server sees it described.
    expect(await (await postForm("/introspect", { token: t.refresh_token }, asRs())).json()).toEqual({ active: false });
    expect(await (await postForm("/introspect", { token: t.refresh_token }, asApp())).json()).toMatchObject({ active: true, client_id: app.client_id });
    const own = (await (await postForm("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE }, asSelf)).json()) as { access_token: string };
    expect(await (await postForm("/introspect", { token: own.access_token }, asSelf)).json()).toMatchObject({ active: true, client_id: self.client_id });
  });

  it("says only active:false for garbage, foreign JWTs and unknown handles", async () => {
    for (const token of ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", `lkr_${"a".repeat(64)}_${"b".repeat(43)}`]) {
      expect(await (await postForm("/introspect", { token }, asRs())).json()).toEqual({ active: false });
    }
  });

  it("describes client_credentials tokens too", async () => {
    const cc = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE },
      { Authorization: basic(agent.client_id, agent.client_secret as string) },
    );
    const { access_token } = (await cc.json()) as { access_token: string };
    expect(await (await postForm("/introspect", { token: access_token }, asRs())).json()).toMatchObject({
      active: true,
      sub: agent.client_id,
      client_id: agent.client_id,
    });
  });

  it("says active:false for a client_credentials token once its client is deleted", async () => {
    const doomed = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic", scope: "mcp:read" });
    const cc = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE },
      { Authorization: basic(doomed.client_id, doomed.client_secret as string) },
    );
    const { access_token } = (await cc.json()) as { access_token: string };
    expect(await (await postForm("/introspect", { token: access_token }, asRs())).json()).toMatchObject({ active: true, client_id: doomed.client_id });
    expect((await adminCall("DELETE", `/clients/${doomed.client_id}`)).status).toBe(204);
    expect(await (await postForm("/introspect", { token: access_token }, asRs())).json()).toEqual({ active: false });
  });

  it("requires client authentication and a token", async () => {
    await expectError(
      await postForm("/introspect", { token: "x", client_id: publicApp.client_id }),
      401,
      "invalid_client",
      "introspection requires client authentication",
    );
    await expectError(await postForm("/introspect", { token: "x" }), 401, "invalid_client", "client authentication is required (client_id is missing)");
    await expectError(await postForm("/introspect", {}, asRs()), 400, "invalid_request", "token is required");
  });
});

describe("revocation (RFC 7009)", () => {
  it("revoking a refresh token revokes the grant and its access tokens", async () => {
    const t = await tokens();
    const res = await postForm("/revoke", { token: t.refresh_token, token_type_hint: "refresh_token" }, asApp());
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    await expectError(
      await postForm("/token", { grant_type: "refresh_token", refresh_token: t.refresh_token }, asApp()),
      400,
      "invalid_grant",
      "the refresh token is invalid, expired or revoked",
    );
    expect(await (await postForm("/introspect", { token: t.access_token }, asRs())).json()).toEqual({ active: false });
  });

  it("revoking an access token deactivates that token only", async () => {
    const t = await tokens();
    expect((await postForm("/revoke", { token: t.access_token }, asApp())).status).toBe(200);
    expect(await (await postForm("/introspect", { token: t.access_token }, asRs())).json()).toEqual({ active: false });
    expect((await postForm("/token", { grant_type: "refresh_token", refresh_token: t.refresh_token }, asApp())).status).toBe(200);
  });

  it("lets a public client revoke its own tokens with its client_id", async () => {
    const t = await tokens(publicApp);
    expect((await postForm("/revoke", { token: t.refresh_token, client_id: publicApp.client_id })).status).toBe(200);
    await expectError(
      await postForm("/token", { grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: publicApp.client_id }),
      400,
      "invalid_grant",
      "the refresh token is invalid, expired or revoked",
    );
  });

  it("answers 200 but changes nothing when a client revokes another client's token", async () => {
    const t = await tokens();
    expect((await postForm("/revoke", { token: t.refresh_token }, asRs())).status).toBe(200);
    expect((await postForm("/revoke", { token: t.access_token }, asRs())).status).toBe(200);
    expect(await (await postForm("/introspect", { token: t.access_token }, asRs())).json()).toMatchObject({ active: true });
    expect((await postForm("/token", { grant_type: "refresh_token", refresh_token: t.refresh_token }, asApp())).status).toBe(200);
  });

  it("answers 200 for unknown tokens", async () => {
    expect((await postForm("/revoke", { token: "nothing-we-issued" }, asApp())).status).toBe(200);
  });

  it("revokes a client_credentials access token for introspection, leaving the client's other tokens alone", async () => {
    const asAgent = { Authorization: basic(agent.client_id, agent.client_secret as string) };
    const issue = async () =>
      ((await (await postForm("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE }, asAgent)).json()) as { access_token: string })
        .access_token;
    const [revoked, kept] = [await issue(), await issue()];
    expect(await (await postForm("/introspect", { token: revoked }, asRs())).json()).toMatchObject({ active: true });
    const res = await postForm("/revoke", { token: revoked, token_type_hint: "access_token" }, asAgent);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    expect(await (await postForm("/introspect", { token: revoked }, asRs())).json()).toEqual({ active: false });
    expect(await (await postForm("/introspect", { token: revoked }, asAgent)).json()).toEqual({ active: false });
    expect(await (await postForm("/introspect", { token: kept }, asRs())).json()).toMatchObject({ active: true, client_id: agent.client_id });
    // Revoking it again is still a success, and changes nothing.
    expect((await postForm("/revoke", { token: revoked }, asAgent)).status).toBe(200);
    expect(await (await postForm("/introspect", { token: kept }, asRs())).json()).toMatchObject({ active: true });
  });

  it("answers 200 but changes nothing when a client revokes another client's client_credentials token", async () => {
    const asAgent = { Authorization: basic(agent.client_id, agent.client_secret as string) };
    const cc = await postForm("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE }, asAgent);
    const { access_token } = (await cc.json()) as { access_token: string };
    expect((await postForm("/revoke", { token: access_token }, asApp())).status).toBe(200);
    expect(await (await postForm("/introspect", { token: access_token }, asRs())).json()).toMatchObject({ active: true });
  });

  it("requires client authentication and a token", async () => {
    await expectError(await postForm("/revoke", { token: "x" }), 401, "invalid_client", "client authentication is required (client_id is missing)");
    await expectError(await postForm("/revoke", {}, asApp()), 400, "invalid_request", "token is required");
  });
});
