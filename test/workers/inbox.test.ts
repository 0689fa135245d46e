import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { setClock } from "../../workers/clock";
import { asClient, inboxState, signedInBrowser } from "./approvals";
import { Browser, codeWithVerifier } from "./browser";
import { adminCall, basic, type CreatedClient, call, createClient, ISSUER, MCP_RESOURCE, postForm } from "./helpers";

/**
 * The inbox: sign-in redirect, CSRF on every form, the strict CSP with a same-origin script, the live
 * WebSocket (hibernating, to the user's ApprovalQueue) and Web Push subscriptions.
 */
let agent: CreatedClient;
let alice: Browser;

afterEach(() => setClock());

beforeAll(async () => {
  agent = await createClient({
    client_name: "Inbox agent",
    grant_types: ["urn:openid:params:grant-type:ciba"],
    token_endpoint_auth_method: "client_secret_basic",
    backchannel_token_delivery_mode: "poll",
  });
  alice = await signedInBrowser();
});

const ask = (binding: string) =>
  asClient(agent, "/bc-authorize", { scope: "openid mcp:read", resource: MCP_RESOURCE, login_hint: "alice@example.com", binding_message: binding });

function openSocket(headers: Record<string, string>): Promise<Response> {
  return exports.default.fetch(new Request(`${ISSUER}/inbox/live`, { headers: { Upgrade: "websocket", ...headers } }));
}

describe("the inbox page", () => {
  it("sends a visitor without a session to the sign-in page, and a wrong password gets an error", async () => {
    const res = await new Browser().get("/inbox");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/signin?next=%2Finbox");
    const browser = new Browser();
    const page = await (await browser.get("/signin?next=https://evil.example")).text();
    expect(page).toContain('name="next" value="/inbox"');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] as string;
    const wrong = await browser.post("/signin", { email: "alice@example.com", password: "nope", csrf, next: "/inbox" });
    expect(wrong.status).toBe(403);
    expect(await wrong.text()).toContain("The email or password is incorrect.");
  });

  it("treats the session of a deleted user as none: the inbox and the device page send it to sign in", async () => {
    const created = await adminCall("POST", "/users", { email: "leaver@example.com", password: "leaver-password-1234", name: "Leaver" });
    const { id } = (await created.json()) as { id: string };
    const leaver = await signedInBrowser("leaver@example.com", "leaver-password-1234");
    expect((await leaver.get("/inbox")).status).toBe(200);
    expect((await adminCall("DELETE", `/users/${id}`)).status).toBe(204);
    const res = await leaver.get("/inbox");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/signin?next=%2Finbox");
    const device = await leaver.get("/device");
    expect(device.status).toBe(303);
    expect(device.headers.get("location")).toBe("/signin?next=%2Fdevice");
  });

  it("shows client, binding message, scopes and resource under a CSP that allows only our own script", async () => {
    expect((await ask("INBOX-1")).status).toBe(200);
    const res = await alice.get("/inbox");
    expect(res.headers.get("content-security-policy")).toBe(
      "default-src 'none'; script-src 'self'; connect-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    const html = await res.text();
    expect(html).toContain("Inbox agent");
    expect(html).toContain('<strong class="binding">INBOX-1</strong>');
    expect(html).toContain("mcp:read");
    expect(html).toContain(MCP_RESOURCE);
    expect(html).toContain('<script src="/assets/inbox.js" defer="">');
    expect(html).not.toMatch(/<script>(?!<)/);
    const script = await call("/assets/inbox.js");
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(await script.text()).toContain("/inbox/live");
  });

  it("refuses a decision without the CSRF token, and reports one already taken", async () => {
    await ask("INBOX-2");
    const { ids, csrf } = await inboxState(alice);
    const id = ids[ids.length - 1] as string;
    const forged = await alice.post("/inbox/decide", { id, decision: "approve" });
    expect(forged.status).toBe(403);
    expect(await forged.json()).toEqual({ error: "access_denied", error_description: "the form has expired; reload the inbox and try again" });
    expect((await alice.post("/inbox/decide", { id, decision: "deny", csrf })).headers.get("location")).toBe("/inbox?done=denied");
    expect((await alice.post("/inbox/decide", { id, decision: "approve", csrf })).headers.get("location")).toBe("/inbox?done=gone");
    expect(await (await alice.get("/inbox?done=gone")).text()).toContain("That request was already decided, or has expired.");
    // Bob cannot decide Alice's requests: they are not in his queue.
    const bob = await signedInBrowser("bob@example.com", "bob-dev-password");
    await ask("INBOX-3");
    const aliceIds = (await inboxState(alice)).ids;
    const bobCsrf = (await inboxState(bob)).csrf;
    const res = await bob.post("/inbox/decide", { id: aliceIds[aliceIds.length - 1] as string, decision: "approve", csrf: bobCsrf });
    expect(res.headers.get("location")).toBe("/inbox?done=gone");
  });
});

describe("the live inbox (WebSocket to the user's ApprovalQueue)", () => {
  it("refuses other origins and visitors without a session", async () => {
    const foreign = await openSocket({ Origin: "https://evil.example", Cookie: alice.cookieHeader });
    expect(foreign.status).toBe(403);
    const anonymous = await openSocket({ Origin: ISSUER });
    expect(anonymous.status).toBe(403);
  });

  it("sends the pending list on connect and again when a request arrives", async () => {
    const res = await openSocket({ Origin: ISSUER, Cookie: alice.cookieHeader });
    expect(res.status).toBe(101);
    const ws = res.webSocket as WebSocket;
    const messages: Array<{ type: string; requests: Array<{ binding_message?: string }> }> = [];
    ws.addEventListener("message", (e) => messages.push(JSON.parse(e.data as string)));
    ws.accept();
    await expect.poll(() => messages.length).toBe(1);
    await ask("LIVE-1");
    await expect.poll(() => messages.length).toBe(2);
    expect(messages[1]?.type).toBe("pending");
    expect(messages[1]?.requests.map((r) => r.binding_message)).toContain("LIVE-1");
    ws.send("refresh");
    await expect.poll(() => messages.length).toBe(3);
    ws.close(1000, "done");
  });

  it("closes the socket once the session that opened it has ended", async () => {
    const res = await openSocket({ Origin: ISSUER, Cookie: alice.cookieHeader });
    const ws = res.webSocket as WebSocket;
    const messages: string[] = [];
    let closed: number | undefined;
    ws.addEventListener("message", (e) => messages.push(e.data as string));
    ws.addEventListener("close", (e) => {
      closed = e.code;
    });
    ws.accept();
    await expect.poll(() => messages.length).toBe(1);
    const later = Date.now() + 9 * 3600 * 1000;
    setClock(() => later);
    ws.send("refresh");
    await expect.poll(() => closed).toBe(4001);
    expect(messages).toHaveLength(1);
  });
});

describe("applications with access", () => {
  it("lists the user's live grants and revokes one: its refresh token stops at once; another user cannot revoke it", async () => {
    const app = await createClient({
      client_name: "Calendar agent",
      redirect_uris: ["https://calendar.example/cb"],
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "client_secret_basic",
    });
    const { code, verifier } = await codeWithVerifier(app.client_id, "https://calendar.example/cb", MCP_RESOURCE, "mcp:read");
    const auth = { Authorization: basic(app.client_id, app.client_secret as string) };
    const tokens = (await (await postForm("/token", { grant_type: "authorization_code", code, code_verifier: verifier }, auth)).json()) as {
      refresh_token: string;
    };
    // Many older index entries that name no live grant (finished ones not yet forgotten, sorting first by id) do
    // not crowd the new grant out: the inbox looks at the newest.
    const registryStub = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
    await runInDurableObject(registryStub, async (_o, state) => {
      for (let i = 0; i < 120; i++) await state.storage.put(`grant-of:user:usr_dev_alice\n0000-finished-${String(i).padStart(3, "0")}`, 1_000 + i);
    });
    const { html, csrf } = await inboxState(alice);
    const card = html.split('<li class="request">').find((c) => c.includes("Calendar agent")) as string;
    expect(card).toContain(`mcp:read on ${MCP_RESOURCE}`);
    const grantId = /name="grant_id" value="([0-9a-f]{64})"/.exec(card)?.[1] as string;
    expect(grantId).toMatch(/^[0-9a-f]{64}$/);

    // Bob cannot revoke alice's grant by naming it.
    const bob = await signedInBrowser("bob@example.com", "bob-dev-password");
    const bobs = await bob.post("/inbox/revoke", { grant_id: grantId, csrf: (await inboxState(bob)).csrf });
    expect(bobs.headers.get("location")).toBe("/inbox?done=unknown");
    expect((await alice.post("/inbox/revoke", { grant_id: grantId })).status).toBe(403);

    const revoked = await alice.post("/inbox/revoke", { grant_id: grantId, csrf });
    expect(revoked.headers.get("location")).toBe("/inbox?done=revoked");
    expect(await (await alice.get("/inbox?done=revoked")).text()).not.toContain("Calendar agent");
    const refreshed = await postForm("/token", { grant_type: "refresh_token", refresh_token: tokens.refresh_token }, auth);
    expect(await refreshed.json()).toEqual({ error: "invalid_grant", error_description: "the refresh token is invalid, expired or revoked" });
  });
});

describe("signing out", () => {
  it("ends this browser's session; with everywhere, every session of the user so far, and no one else's; push subscriptions go", async () => {
    const here = await signedInBrowser("bob@example.com", "bob-dev-password");
    const elsewhere = await signedInBrowser("bob@example.com", "bob-dev-password");
    const someoneElse = await signedInBrowser();
    const { csrf } = await inboxState(here);
    const subscription = {
      endpoint: "https://push.example/bob-laptop",
      keys: { p256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", auth: "BTBZMqHH6r4Tts7J_aSIgg" },
    };
    const subscribed = await call("/inbox/push-subscriptions", {
      method: "POST",
      headers: { Cookie: elsewhere.cookieHeader, "Content-Type": "application/json", "X-CSRF-Token": (await inboxState(elsewhere)).csrf },
      body: JSON.stringify(subscription),
    });
    expect(subscribed.status).toBe(204);
    expect((await here.post("/signout", {})).status).toBe(403);
    const out = await here.post("/signout", { csrf, everywhere: "yes" });
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/signin?next=%2Finbox");
    for (const browser of [here, elsewhere]) {
      const res = await browser.get("/inbox");
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe("/signin?next=%2Finbox");
    }
    expect((await someoneElse.get("/inbox")).status).toBe(200);
    const bobQueue = env.APPROVALS.get(env.APPROVALS.idFromName("user:usr_dev_bob"));
    expect(await runInDurableObject(bobQueue, (_o, state) => [...state.storage.kv.list({ prefix: "push:" })].length)).toBe(0);
    // Signing in again works at once, in the same second too.
    const back = await signedInBrowser("bob@example.com", "bob-dev-password");
    expect((await back.get("/inbox")).status).toBe(200);
  });

  it("without everywhere ends only this browser's session", async () => {
    const here = await signedInBrowser();
    const elsewhere = await signedInBrowser();
    const { csrf } = await inboxState(here);
    expect((await here.post("/signout", { csrf })).status).toBe(303);
    expect((await here.get("/inbox")).status).toBe(303);
    expect((await elsewhere.get("/inbox")).status).toBe(200);
  });
});

describe("Web Push subscriptions", () => {
  const subscription = {
    endpoint: "https://push.example/abc",
    keys: { p256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", auth: "BTBZMqHH6r4Tts7J_aSIgg" },
  };
  const post = (browser: Browser, body: unknown, csrf?: string) =>
    call("/inbox/push-subscriptions", {
      method: "POST",
      headers: { Cookie: browser.cookieHeader, "Content-Type": "application/json", ...(csrf ? { "X-CSRF-Token": csrf } : {}) },
      body: JSON.stringify(body),
    });

  it("stores a subscription for the signed-in user with a CSRF header, and refuses bad ones", async () => {
    const { csrf } = await inboxState(alice);
    expect((await post(alice, subscription, csrf)).status).toBe(204);
    expect(await (await post(alice, subscription)).json()).toEqual({ error: "access_denied", error_description: "missing or wrong CSRF token" });
    expect(await (await post(alice, { endpoint: "https://push.example" }, csrf)).json()).toEqual({
      error: "invalid_request",
      error_description: "the body must be a push subscription (endpoint and keys p256dh, auth)",
    });
    expect(await (await post(alice, { ...subscription, endpoint: "http://push.example/x" }, csrf)).json()).toEqual({
      error: "invalid_request",
      error_description: "the push endpoint must use https",
    });
    expect((await post(new Browser(), subscription, csrf)).status).toBe(403);
  });

  it("keeps at most 10 subscriptions per user, the oldest giving way, so one request cannot fan out further", async () => {
    const bob = await signedInBrowser("bob@example.com", "bob-dev-password");
    const { csrf } = await inboxState(bob);
    const t = Date.now();
    for (let i = 0; i < 12; i++) {
      setClock(() => t + i * 1000);
      expect((await post(bob, { ...subscription, endpoint: `https://push.example/sub-${i}` }, csrf)).status).toBe(204);
    }
    setClock();
    const stored = await runInDurableObject(env.APPROVALS.get(env.APPROVALS.idFromName("user:usr_dev_bob")), (_o, state) =>
      [...state.storage.kv.list<{ endpoint: string }>({ prefix: "push:" })].map(([, s]) => s.endpoint).sort(),
    );
    expect(stored).toEqual(Array.from({ length: 10 }, (_, i) => `https://push.example/sub-${i + 2}`).sort());
  });

  it("publishes the VAPID public key to the page", async () => {
    const html = await (await alice.get("/inbox")).text();
    expect(html).toMatch(/data-vapid-key="B[A-Za-z0-9_-]{86}"/);
  });
});
