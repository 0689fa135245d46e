import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { calculateJwkThumbprint, importJWK, type JWK } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { setClock } from "../../workers/clock";
import { contentDigest, signatureBase, signatureParams, webhookHeaders } from "../../workers/notify/webhook";
import { asClient, inboxState, signedInBrowser } from "./approvals";
import type { Browser } from "./browser";
import { type CreatedClient, call, createClient, ISSUER, MCP_RESOURCE } from "./helpers";

/**
 * Signed webhooks (RFC 9421 HTTP Message Signatures, RFC 9530 Content-Digest): the signature base and
 * digest against RFC 9421 §B.2.4, a round trip through the published key, and a new request in a
 * user's queue reaching their webhook signed.
 */
const B13 = { kty: "EC", crv: "P-256", x: "qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA", y: "Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0" };
const B13_D = "UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs";

const fromB64 = (s: string) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));

async function verify(publicJwk: JWK, base: string, signature: string): Promise<boolean> {
  const key = (await importJWK(publicJwk, "ES256")) as CryptoKey;
  return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, fromB64(signature), new TextEncoder().encode(base));
}

/** The verifier's side: rebuild the base from what arrived, as a gateway would. */
function baseFromHeaders(url: string, headers: Headers): { base: string; signature: string; keyid: string } {
  const input = /^sig1=(.+)$/.exec(headers.get("signature-input") as string)?.[1] as string;
  const base = signatureBase(
    [
      ["@method", "POST"],
      ["@target-uri", url],
      ["content-type", headers.get("content-type") as string],
      ["content-digest", headers.get("content-digest") as string],
    ],
    input,
  );
  return { base, signature: /^sig1=:(.+):$/.exec(headers.get("signature") as string)?.[1] as string, keyid: /;keyid="([^"]+)"/.exec(input)?.[1] as string };
}

afterEach(() => {
  setClock();
  vi.restoreAllMocks();
});

describe("RFC 9421 signature base and RFC 9530 digest", () => {
  it("reproduces §B.2.4's signature base and digest, and the RFC's signature verifies over it", async () => {
    expect(await contentDigest('{"message": "good dog"}', "sha-512")).toBe(
      "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:",
    );
    const params = signatureParams(
      ["@status", "content-type", "content-digest", "content-length"],
      [
        ["created", 1618884473],
        ["keyid", "test-key-ecc-p256"],
      ],
    );
    expect(params).toBe('("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"');
    const base = signatureBase(
      [
        ["@status", "200"],
        ["content-type", "application/json"],
        ["content-digest", "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"],
        ["content-length", "23"],
      ],
      params,
    );
    expect(await verify(B13, base, "wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==")).toBe(true);
    expect(await verify(B13, `${base} `, "wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==")).toBe(false);
  });

  it("signs method, target URI, content type and digest with ecdsa-p256-sha256, created, keyid and tag", async () => {
    const privateKey = (await importJWK({ ...B13, d: B13_D }, "ES256")) as CryptoKey;
    const kid = await calculateJwkThumbprint(B13);
    const url = "https://gateway.example/hooks/alice?x=1";
    const body = '{"type":"approval_request"}';
    const headers = new Headers(await webhookHeaders(url, body, { privateKey, publicJwk: B13, kid }, 1_700_000_000));
    expect(headers.get("content-digest")).toBe(await contentDigest(body));
    expect(headers.get("signature-input")).toBe(
      `sig1=("@method" "@target-uri" "content-type" "content-digest");created=1700000000;keyid="${kid}";alg="ecdsa-p256-sha256";tag="latchkey-approval"`,
    );
    const { base, signature } = baseFromHeaders(url, headers);
    expect(await verify(B13, base, signature)).toBe(true);
    expect(await verify(B13, base.replace("POST", "PUT"), signature)).toBe(false);
  });
});

describe("webhooks for the user's requests", () => {
  let agent: CreatedClient;
  let alice: Browser;
  beforeAll(async () => {
    agent = await createClient({
      client_name: "Hooked agent",
      grant_types: ["urn:openid:params:grant-type:ciba"],
      token_endpoint_auth_method: "client_secret_basic",
      backchannel_token_delivery_mode: "poll",
    });
    alice = await signedInBrowser("bob@example.com", "bob-dev-password");
  });

  it("publishes the webhook key as a JWK Set whose kid is the key's thumbprint", async () => {
    const res = await call("/webhook-keys");
    const { keys } = (await res.json()) as { keys: JWK[] };
    expect(keys).toHaveLength(1);
    // ES256 is ecdsa-p256-sha256 in JOSE's spelling, which JOSE libraries need to import the key.
    expect(keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(keys[0]).not.toHaveProperty("d");
    expect(keys[0]?.kid).toBe(await calculateJwkThumbprint({ kty: "EC", crv: "P-256", x: keys[0]?.x, y: keys[0]?.y }));
  });

  it("saves a webhook from the inbox (CSRF, https only) and signs each new request to it", async () => {
    const { csrf } = await inboxState(alice);
    expect((await alice.post("/inbox/webhook", { url: "https://gateway.example/hook" })).status).toBe(403);
    expect(await (await alice.post("/inbox/webhook", { url: "http://gateway.example/hook", csrf })).json()).toEqual({
      error: "invalid_request",
      error_description: "the webhook URL must use https",
    });
    expect(await (await alice.post("/inbox/webhook", { url: "https://169.254.169.254/latest/meta-data", csrf })).json()).toEqual({
      error: "invalid_request",
      error_description: "the webhook URL must not point to a special-use IP address (link-local)",
    });
    expect((await alice.post("/inbox/webhook", { url: "https://gateway.example/hook", csrf })).headers.get("location")).toBe("/inbox?done=webhook");
    expect(await (await alice.get("/inbox")).text()).toContain('value="https://gateway.example/hook"');

    const calls: Array<{ url: string; headers: Headers; body: string }> = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      calls.push({ url: String(input), headers: new Headers(init?.headers), body: String(init?.body) });
      return new Response(null, { status: 200 });
    });
    const t = Date.now() + 100_000;
    setClock(() => t);
    const res = await asClient(agent, "/bc-authorize", {
      scope: "openid mcp:read",
      resource: MCP_RESOURCE,
      login_hint: "bob@example.com",
      binding_message: "HOOK-1",
    });
    expect(res.status).toBe(200);
    await runDurableObjectAlarm(env.APPROVALS.get(env.APPROVALS.idFromName("user:usr_dev_bob")));
    expect(calls.map((c) => c.url)).toEqual(["https://gateway.example/hook"]);
    const [call0] = calls as [(typeof calls)[0]];
    expect(JSON.parse(call0.body)).toMatchObject({
      type: "approval_request",
      iss: ISSUER,
      sub: "usr_dev_bob",
      client_name: "Hooked agent",
      binding_message: "HOOK-1",
      scope: ["openid", "mcp:read"],
      resources: [MCP_RESOURCE],
      inbox_url: "http://localhost:8787/inbox",
    });
    const { keys } = (await (await call("/webhook-keys")).json()) as { keys: JWK[] };
    const { base, signature, keyid } = baseFromHeaders(call0.url, call0.headers);
    expect(keyid).toBe(keys[0]?.kid);
    expect(await verify(keys[0] as JWK, base, signature)).toBe(true);
    expect(call0.headers.get("content-digest")).toBe(await contentDigest(call0.body));

    // A request decided before its announcement went out is not announced: that would be stale news.
    calls.length = 0;
    const stale = await asClient(agent, "/bc-authorize", {
      scope: "openid mcp:read",
      resource: MCP_RESOURCE,
      login_hint: "bob@example.com",
      binding_message: "HOOK-2",
    });
    const bobQueue = env.APPROVALS.get(env.APPROVALS.idFromName("user:usr_dev_bob"));
    expect(stale.status, await stale.clone().text()).toBe(200);
    const pending = (await bobQueue.pending({ now: Math.floor(t / 1000) })).find((r) => r.binding_message === "HOOK-2");
    expect(await bobQueue.deny({ id: pending?.id as string, sub: "usr_dev_bob", now: Math.floor(t / 1000) })).toMatchObject({ ok: true });
    await runDurableObjectAlarm(bobQueue);
    expect(calls.map((c) => c.url)).toEqual([]);

    // Removing the webhook stops it.
    await alice.post("/inbox/webhook", { url: "", csrf });
    expect(await (await alice.get("/inbox")).text()).toContain('name="url" type="url" value=""');
  });
});
