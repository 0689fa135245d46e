import { decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { asClient, decideNewest, pollCiba, signedInBrowser } from "./approvals";
import type { Browser } from "./browser";
import { adminCall, basic, type CreatedClient, createClient, expectError, MCP_RESOURCE, postForm } from "./helpers";

/**
 * Agent step-up (README "Asking for more access while the user is away"): an agent that holds a grant
 * asks through CIBA with `id_token_hint` and names its grant with `grant_token`; the user's approval
 * widens that same grant, whose refresh token then refreshes the wider scope.
 */
const CIBA = "urn:openid:params:grant-type:ciba";
let agent: CreatedClient;
let stranger: CreatedClient;
let alice: Browser;

beforeAll(async () => {
  const meta = { grant_types: [CIBA, "refresh_token"], token_endpoint_auth_method: "client_secret_basic", backchannel_token_delivery_mode: "poll" };
  [agent, stranger] = await Promise.all([createClient({ client_name: "Agent", ...meta }), createClient({ client_name: "Stranger", ...meta })]);
  alice = await signedInBrowser();
});

async function approved(client: CreatedClient, fields: Record<string, string>, binding: string): Promise<Record<string, string>> {
  const res = await asClient(client, "/bc-authorize", { ...fields, binding_message: binding });
  const { auth_req_id } = (await res.json()) as { auth_req_id: string };
  expect(res.status).toBe(200);
  expect(await decideNewest(alice, "approve", binding)).toBe("/inbox?done=approved");
  const tokens = await pollCiba(client, auth_req_id);
  const body = (await tokens.json()) as Record<string, string>;
  expect(tokens.status, JSON.stringify(body)).toBe(200);
  return body;
}

/** A refresh by the agent, authenticated with its secret. */
function refreshAsAgent(token: string, extra: Record<string, string> = {}): Promise<Response> {
  return postForm(
    "/token",
    { grant_type: "refresh_token", refresh_token: token, ...extra },
    { Authorization: basic(agent.client_id, agent.client_secret as string) },
  );
}

describe("agent step-up through CIBA", () => {
  it("extends the agent's own grant: same grant id, wider scope, and its refresh token now refreshes the wider scope", async () => {
    const first = await approved(agent, { scope: "openid offline_access mcp:read", resource: MCP_RESOURCE, login_hint: "alice@example.com" }, "FIRST");
    const gid = decodeJwt(first.access_token as string).gid;
    const more = await approved(
      agent,
      { scope: "openid mcp:write", resource: MCP_RESOURCE, id_token_hint: first.id_token as string, grant_token: first.refresh_token as string },
      "MORE",
    );
    const at = decodeJwt(more.access_token as string);
    expect(at).toMatchObject({ gid, sub: "usr_dev_alice", aud: MCP_RESOURCE, scope: "mcp:read mcp:write" });
    // The agent keeps the refresh token it has; the grant behind it is wider now.
    expect(more.refresh_token).toBeUndefined();
    const refreshed = await refreshAsAgent(first.refresh_token as string);
    const body = (await refreshed.json()) as Record<string, string>;
    expect(refreshed.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token as string)).toMatchObject({ gid, scope: "mcp:read mcp:write" });
    // Decided, so it left the inbox.
    expect(await (await alice.get("/inbox")).text()).not.toContain("MORE");
  });

  it("adds what the user approved for the resources it named only: no old scope on a new resource, no new scope on an old one", async () => {
    const [a, b] = ["https://docs-a.example/api", "https://docs-b.example/api"];
    for (const resource of [a, b]) {
      const created = await adminCall("POST", "/resources", { resource, name: resource, scopes_supported: ["docs:read", "docs:delete"] });
      expect(created.status).toBe(201);
    }
    const first = await approved(agent, { scope: "openid offline_access docs:read", resource: a, login_hint: "alice@example.com" }, "DOCS-A");
    const more = await approved(
      agent,
      { scope: "openid docs:delete", resource: b, id_token_hint: first.id_token as string, grant_token: first.refresh_token as string },
      "DOCS-B",
    );
    expect(decodeJwt(more.access_token as string)).toMatchObject({ aud: b, scope: "docs:delete" });
    const refresh = async (token: string, resource: string) => {
      const res = await refreshAsAgent(token, { resource });
      const body = (await res.json()) as Record<string, string>;
      expect(res.status, JSON.stringify(body)).toBe(200);
      return body;
    };
    const onA = await refresh(first.refresh_token as string, a);
    expect(decodeJwt(onA.access_token as string)).toMatchObject({ aud: a, scope: "docs:read" });
    const onB = await refresh(onA.refresh_token as string, b);
    expect(decodeJwt(onB.access_token as string)).toMatchObject({ aud: b, scope: "docs:delete" });
  });

  it("leaves the grant as it was when the token request that would widen it fails", async () => {
    const first = await approved(agent, { scope: "openid offline_access mcp:read", resource: MCP_RESOURCE, login_hint: "alice@example.com" }, "KEEP-1");
    const res = await asClient(agent, "/bc-authorize", {
      scope: "openid mcp:write",
      resource: MCP_RESOURCE,
      id_token_hint: first.id_token as string,
      grant_token: first.refresh_token as string,
      binding_message: "KEEP-2",
    });
    const { auth_req_id } = (await res.json()) as { auth_req_id: string };
    expect(await decideNewest(alice, "approve", "KEEP-2")).toBe("/inbox?done=approved");
    await expectError(
      await pollCiba(agent, auth_req_id, { resource: "https://not-granted.example/api" }),
      400,
      "invalid_target",
      "resource https://not-granted.example/api was not granted",
    );
    const refreshed = await refreshAsAgent(first.refresh_token as string);
    const body = (await refreshed.json()) as Record<string, string>;
    expect(refreshed.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token as string).scope).toBe("mcp:read");
  });

  it("accepts an unexpired access token of the grant as grant_token, and says so in the inbox", async () => {
    const first = await approved(agent, { scope: "openid offline_access mcp:read", resource: MCP_RESOURCE, login_hint: "alice@example.com" }, "AT-FIRST");
    const res = await asClient(agent, "/bc-authorize", {
      scope: "openid mcp:write",
      resource: MCP_RESOURCE,
      id_token_hint: first.id_token as string,
      grant_token: first.access_token as string,
      binding_message: "AT-MORE",
    });
    expect(res.status).toBe(200);
    const html = await (await alice.get("/inbox")).text();
    const card = html.split('<li class="request"').find((c) => c.includes("AT-MORE")) as string;
    expect(card).toContain("asks to extend access it already has");
  });

  it("refuses a grant_token of another client, or of another user", async () => {
    const mine = await approved(agent, { scope: "openid offline_access mcp:read", resource: MCP_RESOURCE, login_hint: "alice@example.com" }, "MINE");
    const message = "grant_token does not name an active grant of this client for this user";
    await expectError(
      await asClient(stranger, "/bc-authorize", {
        scope: "openid mcp:write",
        resource: MCP_RESOURCE,
        login_hint: "alice@example.com",
        grant_token: mine.refresh_token as string,
      }),
      400,
      "invalid_request",
      message,
    );
    await expectError(
      await asClient(agent, "/bc-authorize", {
        scope: "openid mcp:write",
        resource: MCP_RESOURCE,
        login_hint: "bob@example.com",
        grant_token: mine.refresh_token as string,
      }),
      400,
      "invalid_request",
      message,
    );
  });

  it("answers invalid_grant when the grant was revoked before the user approved", async () => {
    const first = await approved(agent, { scope: "openid offline_access mcp:read", resource: MCP_RESOURCE, login_hint: "alice@example.com" }, "REV-FIRST");
    const res = await asClient(agent, "/bc-authorize", {
      scope: "openid mcp:write",
      resource: MCP_RESOURCE,
      login_hint: "alice@example.com",
      grant_token: first.refresh_token as string,
      binding_message: "REV-MORE",
    });
    const { auth_req_id } = (await res.json()) as { auth_req_id: string };
    await postForm("/revoke", { token: first.refresh_token as string }, { Authorization: basic(agent.client_id, agent.client_secret as string) });
    await decideNewest(alice, "approve", "REV-MORE");
    await expectError(await pollCiba(agent, auth_req_id), 400, "invalid_grant", "the grant this request extends is no longer active");
  });
});
