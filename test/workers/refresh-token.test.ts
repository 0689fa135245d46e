import { decodeJwt } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { setClock } from "../../workers/clock";
import { codeWithVerifier, obtainCode, pkce } from "./browser";
import { adminCall, type CreatedClient, createClient, expectError, MCP_RESOURCE, postForm } from "./helpers";

const REDIRECT = "https://app.example/callback";
let app: CreatedClient;
let other: CreatedClient;

beforeAll(async () => {
  app = await createClient({
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_post",
  });
  other = await createClient({
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_post",
  });
});

afterEach(() => setClock());

async function tokens(scope = "mcp:read mcp:write") {
  const p = await pkce();
  const { code } = await obtainCode(
    {
      response_type: "code",
      client_id: app.client_id,
      redirect_uri: REDIRECT,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      resource: MCP_RESOURCE,
      scope,
    },
    REDIRECT,
  );
  const res = await postForm("/token", {
    grant_type: "authorization_code",
    code,
    code_verifier: p.verifier,
    client_id: app.client_id,
    client_secret: app.client_secret as string,
  });
  return (await res.json()) as { access_token: string; refresh_token: string };
}

function refresh(token: string, extra: Record<string, string> = {}, client = app) {
  return postForm("/token", {
    grant_type: "refresh_token",
    refresh_token: token,
    client_id: client.client_id,
    client_secret: client.client_secret as string,
    ...extra,
  });
}

describe("refresh_token grant (OAuth 2.1 §4.3, RFC 9700 §4.14)", () => {
  it("rotates the refresh token on every use", async () => {
    const t = await tokens();
    const res = await refresh(t.refresh_token);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const next = (await res.json()) as Record<string, string>;
    expect(next.refresh_token).toMatch(/^lkr_/);
    expect(next.refresh_token).not.toBe(t.refresh_token);
    expect(next.scope).toBe("mcp:read mcp:write");
    expect(decodeJwt(next.access_token as string)).toMatchObject({ aud: MCP_RESOURCE, sub: "usr_dev_alice" });
    expect((await refresh(next.refresh_token as string)).status).toBe(200);
  });

  it("answers a retry of the rotated token inside the window with the same successor", async () => {
    const t = await tokens();
    const a = (await (await refresh(t.refresh_token)).json()) as Record<string, string>;
    const b = (await (await refresh(t.refresh_token)).json()) as Record<string, string>;
    expect(b.refresh_token).toBe(a.refresh_token);
    expect(b.access_token).not.toBe(a.access_token);
    // The successor still works: the retry changed nothing.
    expect((await refresh(a.refresh_token as string)).status).toBe(200);
  });

  it("treats the old token as reuse once its successor was used, and revokes the grant", async () => {
    const t = await tokens();
    const a = (await (await refresh(t.refresh_token)).json()) as Record<string, string>;
    const b = (await (await refresh(a.refresh_token as string)).json()) as Record<string, string>;
    await expectError(await refresh(t.refresh_token), 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
    // The whole family is gone, including the newest token.
    await expectError(await refresh(b.refresh_token as string), 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
  });

  it("treats a retry after the window as reuse", async () => {
    const t = await tokens();
    const a = (await (await refresh(t.refresh_token)).json()) as Record<string, string>;
    const later = Date.now() + 31_000;
    setClock(() => later);
    await expectError(await refresh(t.refresh_token), 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
    await expectError(await refresh(a.refresh_token as string), 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
  });

  it("survives 20 simultaneous uses of one refresh token", async () => {
    const t = await tokens();
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(t.refresh_token)));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<Record<string, string>>;
    expect(new Set(bodies.map((b) => b.refresh_token)).size).toBe(1);
    expect((await refresh(bodies[0]?.refresh_token as string)).status).toBe(200);
  });

  it("may narrow the scope but never widen it", async () => {
    const t = await tokens("mcp:read");
    const narrowed = await refresh(t.refresh_token, { scope: "mcp:read" });
    expect(((await narrowed.json()) as Record<string, string>).scope).toBe("mcp:read");
    const t2 = await tokens("mcp:read");
    await expectError(await refresh(t2.refresh_token, { scope: "mcp:read mcp:write" }), 400, "invalid_scope", "scope mcp:write exceeds what was granted");
    // The refused request changed nothing: the token is still the live one, beyond the reuse window too.
    const later = Date.now() + 60_000;
    setClock(() => later);
    expect((await refresh(t2.refresh_token)).status).toBe(200);
  });

  it("leaves the nonce out of ID tokens issued on refresh (OIDC Core §12.2)", async () => {
    const p = await pkce();
    const { code } = await obtainCode(
      {
        response_type: "code",
        client_id: app.client_id,
        redirect_uri: REDIRECT,
        code_challenge: p.challenge,
        code_challenge_method: "S256",
        scope: "openid offline_access",
        nonce: "n-1",
      },
      REDIRECT,
    );
    const first = (await (
      await postForm("/token", {
        grant_type: "authorization_code",
        code,
        code_verifier: p.verifier,
        client_id: app.client_id,
        client_secret: app.client_secret as string,
      })
    ).json()) as Record<string, string>;
    expect(decodeJwt(first.id_token as string).nonce).toBe("n-1");
    const next = (await (await refresh(first.refresh_token as string)).json()) as Record<string, string>;
    const claims = decodeJwt(next.id_token as string);
    expect(claims.sub).toBe("usr_dev_alice");
    expect(claims.nonce).toBeUndefined();
  });

  it("keeps the token bound to its resources, and a refused resource leaves the refresh token live", async () => {
    const t = await tokens();
    await expectError(
      await refresh(t.refresh_token, { resource: "https://other.example/" }),
      400,
      "invalid_target",
      "resource https://other.example/ was not granted",
    );
    // Past the reuse window, so a token that had been rotated would now count as reuse.
    const later = Date.now() + 120_000;
    setClock(() => later);
    expect((await refresh(t.refresh_token)).status).toBe(200);
  });

  it("refuses a client its attestation policy refuses every token before rotating: the refresh token stays live", async () => {
    const t = await tokens();
    expect((await adminCall("PUT", `/policies/clients/${app.client_id}`, { require_attestation: true })).status).toBe(200);
    try {
      await expectError(await refresh(t.refresh_token), 403, "access_denied", "client attestation is required for this request");
    } finally {
      expect((await adminCall("DELETE", `/policies/clients/${app.client_id}`)).status).toBe(204);
    }
    const later = Date.now() + 120_000;
    setClock(() => later);
    expect((await refresh(t.refresh_token)).status).toBe(200);
  });

  it("issues nothing more for a resource deleted since the grant: invalid_target, and the refresh token is not spent", async () => {
    const resource = "https://retired.example/api";
    const created = await adminCall("POST", "/resources", { resource, name: "Retired", scopes_supported: ["retired:read"] });
    const { id } = (await created.json()) as { id: string };
    const { code, verifier } = await codeWithVerifier(app.client_id, REDIRECT, resource, "retired:read");
    const redeemed = await postForm("/token", {
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      client_id: app.client_id,
      client_secret: app.client_secret as string,
    });
    const t = (await redeemed.json()) as { refresh_token: string };
    expect(redeemed.status).toBe(200);
    expect((await adminCall("DELETE", `/resources/${id}`)).status).toBe(204);
    await expectError(await refresh(t.refresh_token), 400, "invalid_target", `resource ${resource} is no longer registered here`);
    const introspected = await postForm("/introspect", { token: t.refresh_token, client_id: app.client_id, client_secret: app.client_secret as string });
    expect(await introspected.json()).toMatchObject({ active: true });
    // Sent several at once, as clients do when several calls fail together: one rotation, the rest retries,
    // all refused after it; every one gives its hand-out back, so the token is still the live one, not reuse.
    const parallel = await Promise.all(Array.from({ length: 5 }, () => refresh(t.refresh_token)));
    for (const res of parallel) await expectError(res, 400, "invalid_target", `resource ${resource} is no longer registered here`);
    const later = Date.now() + 120_000;
    setClock(() => later);
    const afterWindow = await postForm("/introspect", { token: t.refresh_token, client_id: app.client_id, client_secret: app.client_secret as string });
    expect(await afterWindow.json()).toMatchObject({ active: true });
  });

  it("refuses a scope of blanks alone (invalid_scope), which would narrow to nothing, and spends nothing", async () => {
    const t = await tokens();
    await expectError(await refresh(t.refresh_token, { scope: "  " }), 400, "invalid_scope", "scope must name at least one scope (RFC 6749 section 3.3)");
    expect((await refresh(t.refresh_token)).status).toBe(200);
  });

  it("refuses another client's refresh token without revoking it", async () => {
    const t = await tokens();
    await expectError(await refresh(t.refresh_token, {}, other), 400, "invalid_grant", "the refresh token was issued to another client");
    expect((await refresh(t.refresh_token)).status).toBe(200);
  });

  it("expires a refresh token left unused past the idle lifetime", async () => {
    const t = await tokens();
    const later = Date.now() + 1_209_600_000;
    setClock(() => later);
    await expectError(await refresh(t.refresh_token), 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
  });

  it("requires refresh_token and rejects malformed ones", async () => {
    await expectError(
      await postForm("/token", { grant_type: "refresh_token", client_id: app.client_id, client_secret: app.client_secret as string }),
      400,
      "invalid_request",
      "refresh_token is required",
    );
    await expectError(await refresh("not-a-token"), 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
  });
});
