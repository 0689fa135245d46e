import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { Registry } from "../../durable-objects/registry";
import { networkOf } from "../../workers/clients/network";
import { setClock } from "../../workers/clock";
import { adminCall, call, expectError, ISSUER, type Send, withVars } from "./helpers";

/** Who may register (REGISTRATION_POLICY, RFC 7591 §3), initial access tokens, and the limits on registration. */

const METADATA = { client_name: "Agent", redirect_uris: ["https://agent.example/cb"], token_endpoint_auth_method: "none" };

afterEach(() => setClock());

function register(send: Send, headers: Record<string, string> = {}, body: unknown = METADATA): Promise<Response> {
  return send("/register", { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
}

async function issueToken(input: Record<string, unknown>): Promise<{ id: string; initial_access_token: string; [k: string]: unknown }> {
  const res = await adminCall("POST", "/initial-access-tokens", input);
  expect(res.status).toBe(201);
  expect(res.headers.get("cache-control")).toBe("no-store");
  return res.json();
}

describe("REGISTRATION_POLICY", () => {
  it("closed: 403 access_denied, and no registration_endpoint in the metadata", async () => {
    const closed = withVars({ REGISTRATION_POLICY: "closed" });
    await expectError(await register(closed), 403, "access_denied", "dynamic client registration is closed on this server");
    for (const path of ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]) {
      expect(await (await closed(path)).json()).not.toHaveProperty("registration_endpoint");
    }
    for (const policy of ["open", "initial_access_token"]) {
      const m = (await (await withVars({ REGISTRATION_POLICY: policy })("/.well-known/oauth-authorization-server")).json()) as Record<string, unknown>;
      expect(m.registration_endpoint).toBe(`${ISSUER}/register`);
    }
  });

  describe("initial_access_token", () => {
    const send = withVars({ REGISTRATION_POLICY: "initial_access_token" });
    const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

    it("needs a token: 401 invalid_token with an RFC 6750 challenge", async () => {
      const none = await register(send);
      expect(none.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}"`);
      await expectError(none, 401, "invalid_token", "an initial access token is required");
      const wrong = await register(send, bearer("lki_wrong"));
      expect(wrong.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}", error="invalid_token"`);
      await expectError(wrong, 401, "invalid_token", "the initial access token is invalid, expired or used up");
      await expectError(
        await register(send, { Authorization: "Basic eA==" }),
        401,
        "invalid_token",
        "the Authorization header must carry an initial access token as a Bearer token",
      );
    });

    it("registers with a token the admin API issued, as many times as it allows", async () => {
      const token = await issueToken({ max_uses: 2, expires_in: 3600, description: "for the agent team" });
      expect(token).toMatchObject({
        id: expect.stringMatching(/^iat_/),
        initial_access_token: expect.stringMatching(/^lki_[A-Za-z0-9_-]{43}$/),
        uses_left: 2,
        description: "for the agent team",
        expires_at: expect.any(Number),
        created_at: expect.any(Number),
      });
      const first = await register(send, bearer(token.initial_access_token));
      expect(first.status).toBe(201);
      expect(await first.json()).toMatchObject({ client_name: "Agent", registration_access_token: expect.any(String) });
      expect(await (await adminCall("GET", `/initial-access-tokens/${token.id}`)).json()).toMatchObject({ id: token.id, uses_left: 1 });
      expect((await register(send, bearer(token.initial_access_token))).status).toBe(201);
      // Used up: gone.
      await expectError(
        await register(send, bearer(token.initial_access_token)),
        401,
        "invalid_token",
        "the initial access token is invalid, expired or used up",
      );
      await expectError(await adminCall("GET", `/initial-access-tokens/${token.id}`), 404, "not_found", "no such initial access token");
    });

    it("refuses an expired or revoked token; a bad registration does not spend a use", async () => {
      const expiring = await issueToken({ expires_in: 60 });
      await expectError(await register(send, bearer(expiring.initial_access_token), { redirect_uris: "x" }), 400, "invalid_redirect_uri", /^redirect_uris: /);
      const start = Date.now();
      setClock(() => start + 61_000);
      await expectError(
        await register(send, bearer(expiring.initial_access_token)),
        401,
        "invalid_token",
        "the initial access token is invalid, expired or used up",
      );
      setClock();
      const revoked = await issueToken({ max_uses: 5 });
      expect((await adminCall("DELETE", `/initial-access-tokens/${revoked.id}`)).status).toBe(204);
      await expectError(
        await register(send, bearer(revoked.initial_access_token)),
        401,
        "invalid_token",
        "the initial access token is invalid, expired or used up",
      );
      await expectError(await adminCall("DELETE", `/initial-access-tokens/${revoked.id}`), 404, "not_found", "no such initial access token");
    });

    it("stores only the token's hash", async () => {
      const token = await issueToken({});
      const registry = env.REGISTRY.get(env.REGISTRY.idFromName("registry"));
      const stored = await runInDurableObject(registry, async (_r: Registry, state) => [...(await state.storage.list({ prefix: "iat" }))]);
      expect(JSON.stringify(stored)).not.toContain(token.initial_access_token);
      expect(stored.map(([k]) => k)).toContain(`iat-id:${token.id}`);
    });

    it("the admin API validates what it is asked to issue", async () => {
      await expectError(
        await adminCall("POST", "/initial-access-tokens", { expires_in: 10 }),
        400,
        "invalid_request",
        "expires_in: Invalid value: Expected >=60 but received 10",
      );
      await expectError(
        await adminCall("POST", "/initial-access-tokens", { max_uses: 0 }),
        400,
        "invalid_request",
        "max_uses: Invalid value: Expected >=1 but received 0",
      );
    });
  });
});

describe("limits", () => {
  it("counts open registrations per network and hour: 429 with Retry-After past the limit", async () => {
    const send = withVars({ REGISTRATIONS_PER_IP_PER_HOUR: "2" });
    const from = (ip: string) => ({ "CF-Connecting-IP": ip });
    expect((await register(send, from("203.0.113.7"))).status).toBe(201);
    expect((await register(send, from("203.0.113.7"))).status).toBe(201);
    const refused = await register(send, from("203.0.113.7"));
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    await expectError(refused, 429, "temporarily_unavailable", "too many registrations from this network; try again later");
    expect((await register(send, from("203.0.113.8"))).status).toBe(201);
    // One IPv6 /64 is one network.
    expect((await register(send, from("2001:db8:1:2::1"))).status).toBe(201);
    expect((await register(send, from("2001:db8:1:2:ffff::9"))).status).toBe(201);
    expect((await register(send, from("2001:0db8:0001:0002:0:0:0:3"))).status).toBe(429);
    // The next hour counts afresh.
    const start = Date.now();
    setClock(() => start + 3600_000);
    expect((await register(send, from("203.0.113.7"))).status).toBe(201);
  });

  it("networkOf: IPv4 as is, IPv6 by its /64", () => {
    expect(networkOf("203.0.113.7")).toBe("203.0.113.7");
    expect(networkOf("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(networkOf("2001:0DB8:0000:0001:1:2:3:4")).toBe("2001:db8:0:1::/64");
    expect(networkOf("::1")).toBe("0:0:0:0::/64");
    expect(networkOf(undefined)).toBe("unknown");
    expect(networkOf("not:an:address")).toBe("not:an:address");
  });

  it("does not count registrations made with an initial access token", async () => {
    const send = withVars({ REGISTRATION_POLICY: "initial_access_token", REGISTRATIONS_PER_IP_PER_HOUR: "1" });
    const token = await issueToken({});
    for (let i = 0; i < 3; i++) {
      expect((await register(send, { Authorization: `Bearer ${token.initial_access_token}`, "CF-Connecting-IP": "192.0.2.1" })).status).toBe(201);
    }
  });

  it("caps redirect_uris at 20 and the request at 16 KB", async () => {
    const uris = Array.from({ length: 21 }, (_, i) => `https://agent.example/cb${i}`);
    await expectError(
      await register(call, { "CF-Connecting-IP": "192.0.2.50" }, { ...METADATA, redirect_uris: uris }),
      400,
      "invalid_redirect_uri",
      "redirect_uris: Invalid length: Expected <=20 but received 21",
    );
    await expectError(
      await register(call, { "CF-Connecting-IP": "192.0.2.51" }, { ...METADATA, client_name: "x".repeat(17_000) }),
      400,
      "invalid_client_metadata",
      "the registration request is too large",
    );
  });
});

describe("software statements (RFC 7591 §2.3)", () => {
  it("are refused with invalid_software_statement, at /register and in the admin API", async () => {
    const statement = { ...METADATA, software_statement: "eyJhbGciOiJFUzI1NiJ9.e30.sig" };
    await expectError(
      await register(call, { "CF-Connecting-IP": "192.0.2.60" }, statement),
      400,
      "invalid_software_statement",
      "software statements are not supported by this server",
    );
    await expectError(
      await adminCall("POST", "/clients", statement),
      400,
      "invalid_software_statement",
      "software statements are not supported by this server",
    );
  });
});
