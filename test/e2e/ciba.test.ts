/**
 * CIBA and the device grant end to end: the Worker under local workerd, a real approval in the inbox in
 * headless Chromium, loopback HTTP servers as the clients' notification endpoints (ping, push) and as a
 * Web Push service that decrypts what it receives; the inbox updating live over its WebSocket.
 */
import { createHash, createPublicKey, type JsonWebKey, verify } from "node:crypto";
import { createRemoteJWKSet, decodeJwt, importJWK, jwtVerify } from "jose";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALICE,
  type AuthorizationServer,
  createClient,
  launchBrowser,
  MCP_RESOURCE,
  type RegisteredClient,
  signIn,
  startServer,
  stopAll,
  type TestBrowser,
} from "./harness";
import { type LoopbackServer, pushReceiver, type Received, startLoopbackServer } from "./notify-server";

const CIBA = "urn:openid:params:grant-type:ciba";
let server: AuthorizationServer;
let browser: TestBrowser;
let notify: LoopbackServer;
let inbox: Page;
const clients: Record<"poll" | "ping" | "push", RegisteredClient> = {} as never;

beforeAll(async () => {
  [server, browser, notify] = await Promise.all([startServer(), launchBrowser(), startLoopbackServer()]);
  for (const mode of ["poll", "ping", "push"] as const) {
    clients[mode] = await createClient(server, {
      client_name: `Agent (${mode})`,
      grant_types: [CIBA, "refresh_token"],
      token_endpoint_auth_method: "client_secret_basic",
      backchannel_token_delivery_mode: mode,
      ...(mode !== "poll" ? { backchannel_client_notification_endpoint: `${notify.origin}/${mode}` } : {}),
    });
  }
  // Alice opens her inbox: the sign-in page first, then the inbox, connected live.
  inbox = await browser.newPage();
  await inbox.goto(`${server.issuer}/inbox`);
  // (signIn() polls with expect, which only works inside a test.)
  await inbox.getByRole("heading", { name: "Sign in" }).waitFor();
  await inbox.getByLabel("Email").fill(ALICE.email);
  await inbox.getByLabel("Password").fill(ALICE.password);
  await inbox.getByRole("button", { name: "Sign in" }).click();
  await inbox.waitForURL(`${server.issuer}/inbox`);
  await inbox.locator("body[data-live=connected]").waitFor();
});

afterAll(() => stopAll(server, browser, notify));

function asClient(client: RegisteredClient, path: string, fields: Record<string, string>): Promise<Response> {
  return server.fetch(path, {
    method: "POST",
    headers: { Authorization: `Basic ${btoa(`${client.client_id}:${client.client_secret}`)}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
}

async function ask(mode: keyof typeof clients, binding: string, extra: Record<string, string> = {}): Promise<string> {
  const res = await asClient(clients[mode], "/bc-authorize", {
    scope: "openid offline_access mcp:read",
    resource: MCP_RESOURCE,
    login_hint: ALICE.email,
    binding_message: binding,
    ...(mode !== "poll" ? { client_notification_token: `bearer-for-${binding}` } : {}),
    ...extra,
  });
  const body = (await res.json()) as { auth_req_id: string };
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body.auth_req_id;
}

/** The request appears in the open inbox without a reload (WebSocket); press the button on it. */
async function press(binding: string, button: "Approve" | "Deny"): Promise<void> {
  const card = inbox.locator("li.request", { hasText: binding });
  await card.waitFor();
  await card.getByRole("button", { name: button }).click();
  await inbox
    .getByRole("status")
    .filter({ hasText: button === "Approve" ? "Approved." : "Denied." })
    .waitFor();
  await inbox.locator("body[data-live=connected]").waitFor();
}

const poll = (mode: "poll" | "ping", id: string) => asClient(clients[mode], "/token", { grant_type: CIBA, auth_req_id: id });

describe("CIBA with a real approval in the inbox", () => {
  it("poll: pending until Alice presses Approve in the inbox, then tokens bound to the resource", async () => {
    const id = await ask("poll", "POLL-1");
    expect(((await (await poll("poll", id)).json()) as { error: string }).error).toBe("authorization_pending");
    // biome-ignore lint/performance/useDomNodeTextContent: a Playwright locator; rendered text
    expect(await inbox.locator("li.request", { hasText: "POLL-1" }).innerText()).toContain("mcp:read");
    await press("POLL-1", "Approve");
    await new Promise((r) => setTimeout(r, 5_000));
    const res = await poll("poll", id);
    const body = (await res.json()) as Record<string, string>;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token as string)).toMatchObject({ sub: ALICE.sub, aud: MCP_RESOURCE, scope: "mcp:read" });
    expect(body.refresh_token).toMatch(/^lkr_/);
  });

  it("the inbox updates live: a request arrives and leaves without a reload; Deny gives access_denied", async () => {
    // A mark on the window survives only as long as the page is not reloaded.
    await inbox.evaluate("window.notReloaded = true");
    const id = await ask("poll", "LIVE-2");
    await inbox.locator("li.request", { hasText: "LIVE-2" }).waitFor();
    expect(await inbox.evaluate("window.notReloaded")).toBe(true);
    await press("LIVE-2", "Deny");
    expect(await inbox.locator("li.request", { hasText: "LIVE-2" }).count()).toBe(0);
    expect(await (await poll("poll", id)).json()).toEqual({ error: "access_denied", error_description: "the user denied the request" });
  });

  it("ping: the client's endpoint gets {auth_req_id} with its bearer token, then the client fetches the tokens", async () => {
    const id = await ask("ping", "PING-3");
    await press("PING-3", "Approve");
    await expect.poll(() => notify.received.filter((r) => r.path === "/ping").length, { timeout: 10_000 }).toBe(1);
    const ping = notify.received.find((r) => r.path === "/ping");
    expect(ping?.headers.authorization).toBe("Bearer bearer-for-PING-3");
    expect(ping?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(ping?.body.toString() as string)).toEqual({ auth_req_id: id });
    const res = await poll("ping", id);
    expect(res.status).toBe(200);
  });

  it("push: the token response arrives at the client's endpoint, retried after a failure, with the CIBA ID token claims", async () => {
    notify.failNext(503);
    const id = await ask("push", "PUSH-4");
    await press("PUSH-4", "Approve");
    // The first attempt fails; the outbox retries after 10 s with the very same body.
    await expect.poll(() => notify.received.filter((r) => r.path === "/push").length, { timeout: 30_000, interval: 500 }).toBe(2);
    const [first, second] = notify.received.filter((r) => r.path === "/push");
    expect(second?.body.toString()).toBe(first?.body.toString());
    expect(second?.headers.authorization).toBe("Bearer bearer-for-PUSH-4");
    const pushed = JSON.parse(second?.body.toString() as string) as Record<string, string>;
    expect(pushed).toMatchObject({ token_type: "Bearer", auth_req_id: id, refresh_token: expect.stringMatching(/^lkr_/) });
    const jwks = createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
    const { payload } = await jwtVerify(pushed.id_token as string, jwks, { issuer: server.issuer, audience: clients.push.client_id });
    expect(payload["urn:openid:params:jwt:claim:auth_req_id"]).toBe(id);
    expect(payload.at_hash).toBeTypeOf("string");
    expect(payload["urn:openid:params:jwt:claim:rt_hash"]).toBeTypeOf("string");
    // Push clients never poll.
    expect(((await (await asClient(clients.push, "/token", { grant_type: CIBA, auth_req_id: id })).json()) as { error: string }).error).toBe(
      "unauthorized_client",
    );
  }, 60_000);
});

describe("the device grant through the /device page", () => {
  it("a TV shows a code; Alice opens the verification URI, confirms, approves; the TV gets its tokens", async () => {
    const tv = await createClient(server, {
      client_name: "Living-room TV",
      grant_types: ["urn:ietf:params:oauth:grant-type:device_code"],
      token_endpoint_auth_method: "none",
    });
    const res = await server.fetch("/device_authorization", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: tv.client_id, scope: "mcp:read", resource: MCP_RESOURCE }),
    });
    const d = (await res.json()) as { device_code: string; user_code: string; verification_uri_complete: string; interval: number };
    const page = await browser.newPage();
    await page.goto(d.verification_uri_complete);
    await signIn(page, ALICE);
    await expect.poll(() => page.getByLabel("Code").inputValue()).toBe(d.user_code);
    await page.getByRole("button", { name: "Continue" }).click();
    await page.getByRole("heading", { name: "Approve this device?" }).waitFor();
    // biome-ignore lint/performance/useDomNodeTextContent: a Playwright locator; rendered text
    expect(await page.locator("main").innerText()).toContain("Living-room TV");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.getByRole("heading", { name: "Device connected" }).waitFor();
    const token = await server.fetch("/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: d.device_code, client_id: tv.client_id }),
    });
    const body = (await token.json()) as Record<string, string>;
    expect(token.status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(body.access_token as string)).toMatchObject({ sub: ALICE.sub, client_id: tv.client_id, scope: "mcp:read" });
  });
});

describe("Web Push to the user's subscription", () => {
  it("a new request is pushed, encrypted (aes128gcm) with VAPID, to a subscription registered from the inbox", async () => {
    const pushService = await startLoopbackServer(201);
    try {
      const receiver = pushReceiver();
      // What the inbox's "Notify me" button sends once the browser's push service answered: here, our loopback one.
      const subscription = JSON.stringify({ endpoint: `${pushService.origin}/push/alice`, keys: receiver.keys });
      const status = await inbox.evaluate(`(async () => {
        const csrf = document.getElementById("requests").dataset.csrf;
        const res = await fetch("/inbox/push-subscriptions", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: ${JSON.stringify(subscription)},
        });
        return res.status;
      })()`);
      expect(status).toBe(204);
      await ask("poll", "WEBPUSH-5");
      await expect.poll(() => pushService.received.length, { timeout: 10_000 }).toBe(1);
      const [message] = pushService.received;
      expect(message?.headers["content-encoding"]).toBe("aes128gcm");
      expect(message?.headers.ttl).toBe("600");
      expect(JSON.parse(receiver.decrypt(message?.body as Buffer))).toMatchObject({
        type: "approval_request",
        title: "Agent (poll) asks for access",
        body: "WEBPUSH-5",
        url: "/inbox",
      });
      // RFC 8292: the JWT verifies with the key in k=, for the push service's origin.
      const [, t, k] = /^vapid t=([^,]+), k=(.+)$/.exec(message?.headers.authorization as string) as RegExpExecArray;
      const point = Buffer.from(k as string, "base64url");
      const key = await importJWK(
        { kty: "EC", crv: "P-256", x: point.subarray(1, 33).toString("base64url"), y: point.subarray(33).toString("base64url") },
        "ES256",
      );
      const { payload } = await jwtVerify(t as string, key, { audience: pushService.origin });
      expect(payload.sub).toMatch(/^mailto:/);
    } finally {
      await pushService.stop();
    }
  });
});

describe("signed webhooks (RFC 9421)", () => {
  it("the user saves a webhook in the inbox; a new request reaches it signed, and the signature verifies with node:crypto", async () => {
    const gateway = await startLoopbackServer(200);
    try {
      await inbox.getByLabel("Webhook for new requests (signed, RFC 9421)").fill(`${gateway.origin}/hook`);
      await inbox.getByRole("button", { name: "Save webhook" }).click();
      await inbox.getByRole("status").filter({ hasText: "Webhook saved." }).waitFor();
      await ask("poll", "HOOK-6");
      await expect.poll(() => gateway.received.length, { timeout: 10_000 }).toBe(1);
      const [hook] = gateway.received as [Received];
      const body = hook.body.toString();
      expect(JSON.parse(body)).toMatchObject({ type: "approval_request", client_name: "Agent (poll)", binding_message: "HOOK-6" });
      // What a gateway does: digest, then the signature base of RFC 9421 §2.5, then ECDSA with the published key.
      expect(hook.headers["content-digest"]).toBe(`sha-256=:${createHash("sha256").update(body).digest("base64")}:`);
      const input = /^sig1=(.+)$/.exec(hook.headers["signature-input"] as string)?.[1] as string;
      expect(input).toMatch(
        /^\("@method" "@target-uri" "content-type" "content-digest"\);created=\d+;keyid="[\w-]{43}";alg="ecdsa-p256-sha256";tag="latchkey-approval"$/,
      );
      const base = [
        '"@method": POST',
        `"@target-uri": ${gateway.origin}/hook`,
        `"content-type": ${hook.headers["content-type"]}`,
        `"content-digest": ${hook.headers["content-digest"]}`,
        `"@signature-params": ${input}`,
      ].join("\n");
      const { keys } = (await (await server.fetch("/webhook-keys")).json()) as { keys: Array<JsonWebKey & { kid: string }> };
      expect(input).toContain(`keyid="${keys[0]?.kid}"`);
      const signature = Buffer.from(/^sig1=:(.+):$/.exec(hook.headers.signature as string)?.[1] as string, "base64");
      const key = createPublicKey({ key: keys[0] as JsonWebKey, format: "jwk" });
      expect(verify("sha256", Buffer.from(base), { key, dsaEncoding: "ieee-p1363" }, signature)).toBe(true);
    } finally {
      await gateway.stop();
    }
  });
});

describe("taking access back, then signing out everywhere, in the inbox", () => {
  it("lists the agents with access, revokes one with its button, and signs out of every session", async () => {
    await inbox.goto(`${server.issuer}/inbox`);
    const granted = inbox.locator("section[aria-labelledby=connected-heading] li.request", { hasText: "Agent (poll)" });
    const before = await granted.count();
    expect(before).toBeGreaterThan(0);
    // biome-ignore lint/performance/useDomNodeTextContent: a Playwright locator; rendered text
    expect(await granted.first().innerText()).toContain("mcp:read");
    await granted.first().getByRole("button", { name: "Revoke access" }).click();
    await inbox.getByRole("status").filter({ hasText: "Access revoked." }).waitFor();
    expect(await granted.count()).toBe(before - 1);
    await inbox.getByRole("button", { name: "Sign out everywhere" }).click();
    await inbox.waitForURL(`${server.issuer}/signin?next=%2Finbox`);
    const again = await inbox.goto(`${server.issuer}/inbox`);
    expect(again?.url()).toBe(`${server.issuer}/signin?next=%2Finbox`);
  });
});
