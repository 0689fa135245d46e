import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { buildApp } from "../../workers/app";
import { ServerError } from "../../workers/errors";
import { asClient, decideNewest, signedInBrowser } from "./approvals";
import { authorizeUrl, Browser, hidden, obtainCode, pkce } from "./browser";
import { basic, type CreatedClient, call, createClient, expectError, ISSUER, MCP_RESOURCE, postForm, withVars } from "./helpers";

const REDIRECT = "https://app.example/callback";
let app: CreatedClient;

beforeAll(async () => {
  app = await createClient({
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token", "client_credentials"],
    token_endpoint_auth_method: "client_secret_basic",
  });
});

afterEach(() => vi.restoreAllMocks());

/** Everything the Worker logs while `run` runs, one string per line. */
async function captureLogs(run: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  for (const level of ["log", "warn", "error", "info", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
  }
  await run();
  vi.restoreAllMocks();
  return lines;
}

describe("observability", () => {
  it("puts a request id on every response, errors included", async () => {
    for (const res of [await call("/health"), await call("/nope"), await postForm("/token", { grant_type: "client_credentials" })]) {
      expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it("logs a failure's internal detail on its own line, and a deliberate 503 (the admin API switched off) only on the request line", async () => {
    const worker = buildApp();
    worker.get("/fails", () => {
      throw new ServerError("could not queue the request", "queue object answered: storage full");
    });
    const lines = await captureLogs(async () => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(new Request(`${ISSUER}/fails`), env, ctx);
      await waitOnExecutionContext(ctx);
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: "server_error", error_description: "could not queue the request" });
      const off = await withVars({ ADMIN_TOKEN: "" })("/admin/clients", { headers: { Authorization: "Bearer x" } });
      expect(off.status).toBe(503);
    });
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries.find((e) => e.event === "unexpected_error" && e.path === "/fails")).toMatchObject({ detail: "queue object answered: storage full" });
    expect(entries.filter((e) => e.event === "unexpected_error" && e.path === "/admin/clients")).toEqual([]);
    expect(entries.find((e) => e.event === "request" && e.path === "/admin/clients")).toMatchObject({ status: 503, error: "temporarily_unavailable" });
  });

  it("audits who acted for whom: registrations, approval requests and decisions, issuance with jti and grant, refused admin tokens, failed sign-ins by account hash", async () => {
    const ciba = await createClient({
      client_name: "Audited agent",
      grant_types: ["urn:openid:params:grant-type:ciba"],
      token_endpoint_auth_method: "client_secret_basic",
      backchannel_token_delivery_mode: "poll",
    });
    const events: Array<Record<string, string>> = [];
    const lines = await captureLogs(async () => {
      const registered = await call("/register", {
        method: "POST",
        headers: { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.77" },
        body: JSON.stringify({ client_name: "Self", redirect_uris: ["https://self.example/cb"], token_endpoint_auth_method: "none" }),
      });
      expect(registered.status).toBe(201);
      const asked = await asClient(ciba, "/bc-authorize", {
        scope: "openid mcp:read",
        resource: MCP_RESOURCE,
        login_hint: "alice@example.com",
        binding_message: "AUDIT-1",
      });
      expect(asked.status).toBe(200);
      const alice = await signedInBrowser();
      await decideNewest(alice, "approve", "AUDIT-1");
      expect(
        (await postForm("/token", { grant_type: "client_credentials" }, { Authorization: basic(app.client_id, app.client_secret as string) })).status,
      ).toBe(200);
      expect((await call("/admin/clients", { headers: { Authorization: "Bearer wrong-token" } })).status).toBe(401);
      const browser = new Browser();
      const page = await (
        await browser.get(
          authorizeUrl({
            response_type: "code",
            client_id: app.client_id,
            redirect_uri: REDIRECT,
            code_challenge: (await pkce()).challenge,
            code_challenge_method: "S256",
          }),
        )
      ).text();
      await browser.post("/login", {
        email: "carol-audit@example.com",
        password: "wrong",
        interaction: hidden(page, "interaction"),
        csrf: hidden(page, "csrf"),
      });
    });
    for (const line of lines) events.push(...((JSON.parse(line) as { audit?: Array<Record<string, string>> }).audit ?? []));
    const of = (event: string) => events.filter((e) => e.event === event);
    expect(of("client.registered")).toEqual([
      { event: "client.registered", outcome: "success", client_id: expect.stringMatching(/^lk_/), detail: "dynamic_registration" },
    ]);
    expect(of("approval.requested")[0]).toMatchObject({ client_id: ciba.client_id, subject: "usr_dev_alice", detail: "ciba poll scope=openid mcp:read" });
    expect(of("approval.approved")[0]).toMatchObject({
      client_id: ciba.client_id,
      subject: "usr_dev_alice",
      detail: expect.stringMatching(/^ciba \S+ scope=openid mcp:read$/),
    });
    expect(of("token.issued").at(-1)).toMatchObject({
      client_id: app.client_id,
      detail: expect.stringMatching(/^client_credentials aud=\S+ jti=[A-Za-z0-9_-]{22}( scope=.*)?$/),
    });
    expect(of("admin.refused")).toEqual([{ event: "admin.refused", outcome: "failure", detail: "GET /admin/clients" }]);
    expect(of("login.failed")).toEqual([{ event: "login.failed", outcome: "failure", detail: expect.stringMatching(/^account=[A-Za-z0-9_-]{16}$/) }]);
    expect(JSON.stringify(events)).not.toContain("carol-audit");
  });

  it("answers /health without touching storage", async () => {
    const res = await call("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", environment: "dev", issuer: "http://localhost:8787" });
  });

  it("logs every request and audit event as JSON, and never a code, token, secret, password or cookie", async () => {
    const secrets: string[] = [app.client_secret as string, "alice-dev-password"];
    const lines = await captureLogs(async () => {
      const p = await pkce();
      const { code, browser } = await obtainCode(
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
      secrets.push(code, p.verifier, ...browser.cookieHeader.split("; ").map((c) => c.split("=")[1] as string));
      const auth = { Authorization: basic(app.client_id, app.client_secret as string) };
      const tokens = (await (await postForm("/token", { grant_type: "authorization_code", code, code_verifier: p.verifier }, auth)).json()) as Record<
        string,
        string
      >;
      secrets.push(tokens.access_token as string, tokens.refresh_token as string);
      const next = (await (await postForm("/token", { grant_type: "refresh_token", refresh_token: tokens.refresh_token as string }, auth)).json()) as Record<
        string,
        string
      >;
      secrets.push(next.refresh_token as string);
      await postForm("/token", { grant_type: "refresh_token", refresh_token: "lkr_garbage" }, auth);
      await postForm("/token", { grant_type: "client_credentials", client_id: app.client_id, client_secret: "wrong-secret-value" });
      await postForm("/revoke", { token: next.refresh_token as string }, auth);
    });
    // One line per request, whatever it logged: /authorize, /login, /authorize/continue, /consent, four
    // token requests and a revocation are nine lines under nine request ids.
    expect(lines).toHaveLength(9);
    expect(new Set(lines.map((l) => (JSON.parse(l) as { request_id: string }).request_id)).size).toBe(lines.length);
    for (const line of lines) {
      const parsed = JSON.parse(line) as { level: string; event: string; request_id?: string };
      expect(parsed.request_id, line).toMatch(/^[0-9a-f-]{36}$/);
      for (const secret of secrets) expect(line).not.toContain(secret);
      expect(line).not.toContain("wrong-secret-value");
    }
    // One line per request: its audit events ride in it.
    const requests = lines.map((l) => JSON.parse(l) as { event: string; audit?: Record<string, string>[] });
    expect(requests.every((r) => r.event === "request")).toBe(true);
    const audits = requests.flatMap((r) => r.audit ?? []);
    const trail = audits.map((a) => `${a.event} ${a.outcome} ${a.detail ?? ""}`.trim());
    expect(trail).toEqual([
      "login.succeeded success",
      expect.stringMatching(/^authorization\.granted success grant [0-9a-f]{64} scope=mcp:read mcp:write$/),
      expect.stringMatching(/^token\.issued success authorization_code aud=http:\/\/localhost:8788\/mcp jti=\S+ grant=[0-9a-f]{64} scope=mcp:read mcp:write$/),
      expect.stringMatching(/^token\.issued success refresh_token aud=http:\/\/localhost:8788\/mcp jti=\S+ grant=[0-9a-f]{64} scope=mcp:read mcp:write$/),
      "token.refused failure refresh_token invalid_grant",
      "token.refused failure client_credentials invalid_client",
      expect.stringMatching(/^token\.revoked success refresh token, grant [0-9a-f]{64}$/),
    ]);
    expect(audits.find((a) => a.event === "token.issued")).toMatchObject({ client_id: app.client_id, subject: "usr_dev_alice" });
  });

  it("by default (LOG_REQUESTS=failures) logs only refused and failed requests, with their audit events", async () => {
    // The tests run with LOG_REQUESTS=all (vitest.config.ts); this is the Worker as deployed.
    const send = withVars({ LOG_REQUESTS: "failures" });
    const auth = { Authorization: basic(app.client_id, app.client_secret as string) };
    const lines = await captureLogs(async () => {
      expect((await send("/health")).status).toBe(200);
      expect((await postForm("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE }, auth, send)).status).toBe(200);
      await expectError(await postForm("/token", { grant_type: "refresh_token", refresh_token: "lkr_garbage" }, auth, send), 400, "invalid_grant");
    });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      level: "info",
      event: "request",
      method: "POST",
      path: "/token",
      status: 400,
      error: "invalid_grant",
      audit: [{ event: "token.refused", outcome: "failure", client_id: app.client_id, detail: "refresh_token invalid_grant" }],
    });
  });
});

/**
 * The rate limiter counts in fixed one-minute windows, so a run that straddles a window boundary
 * sees the count restart once. A limit of `limit` is therefore reached after `limit` allowed requests,
 * or after up to twice that when a boundary falls in between — never sooner, never later.
 */
function expectLimitedAfter(statuses: number[], allowed: number, limit: number): void {
  const first429 = statuses.indexOf(429);
  expect(first429, statuses.join(",")).toBeGreaterThanOrEqual(limit);
  expect(first429, statuses.join(",")).toBeLessThanOrEqual(2 * limit);
  expect(statuses.slice(0, first429).every((s) => s === allowed)).toBe(true);
}

describe("abuse limits", () => {
  it("limits sign-in attempts per IP with 429 and Retry-After", async () => {
    const browser = new Browser();
    Object.defineProperty(browser, "ip", { value: "203.0.113.7" });
    const p = await pkce();
    const html = await (
      await browser.get(
        authorizeUrl({ response_type: "code", client_id: app.client_id, redirect_uri: REDIRECT, code_challenge: p.challenge, code_challenge_method: "S256" }),
      )
    ).text();
    const statuses: number[] = [];
    for (let i = 0; i < 21 && !statuses.includes(429); i++) {
      const res = await browser.post("/login", {
        email: `nobody${i}@example.com`,
        password: "wrong-password",
        interaction: hidden(html, "interaction"),
        csrf: hidden(html, "csrf"),
      });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(res.headers.get("retry-after")).toBe("60");
        expect(await res.text()).toContain("Too many sign-in attempts from here");
      }
    }
    expectLimitedAfter(statuses, 401, 10);
  });

  it("locks an account after five failures, with backoff, without revealing whether it exists", async () => {
    const p = await pkce();
    /** A fresh browser (and IP: the lockout is per account, not per address) at the sign-in page. */
    const atSignIn = async () => {
      const browser = new Browser();
      const params = { response_type: "code", client_id: app.client_id, redirect_uri: REDIRECT, code_challenge: p.challenge, code_challenge_method: "S256" };
      const html = await (await browser.get(authorizeUrl(params))).text();
      const attempt = (email: string, password: string) =>
        browser.post("/login", { email, password, interaction: hidden(html, "interaction"), csrf: hidden(html, "csrf") });
      return { attempt };
    };
    for (const email of ["bob@example.com", "ghost@example.com"]) {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) {
        const res = await (await atSignIn()).attempt(email, "wrong-password");
        statuses.push(res.status);
        if (i === 6) expect(await res.text()).toContain("Too many failed attempts. Try again in 1 minute.");
      }
      expect(statuses, email).toEqual([401, 401, 401, 401, 401, 429, 429]);
    }
    // Guesses sent at the same moment are counted as they begin: five are checked, the rest refused.
    const pages = await Promise.all(Array.from({ length: 12 }, () => atSignIn()));
    const burst = await Promise.all(pages.map((page, i) => page.attempt("carol-race@example.com", `guess-${i}`)));
    expect(burst.map((r) => r.status).sort()).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    // Even the right password is refused while locked.
    expect((await (await atSignIn()).attempt("bob@example.com", "bob-dev-password")).status).toBe(429);
  });

  it("limits token requests per client", async () => {
    const agent = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
    const auth = { Authorization: basic(agent.client_id, agent.client_secret as string) };
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 401 && !statuses.includes(429); i++) {
      last = await postForm("/token", { grant_type: "client_credentials", resource: MCP_RESOURCE }, auth);
      statuses.push(last.status);
    }
    expectLimitedAfter(statuses, 200, 200);
    expect((last as Response).headers.get("retry-after")).toBe("60");
    await expectError(last as Response, 429, "temporarily_unavailable", "too many requests; try again later");
  });

  it("limits pushed requests per client and IP, so a public client_id is no licence to fill storage", async () => {
    const spa = await createClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" });
    const fields = {
      client_id: spa.client_id,
      response_type: "code",
      redirect_uri: REDIRECT,
      code_challenge: (await pkce()).challenge,
      code_challenge_method: "S256",
    };
    const from = (ip: string) => ({ "CF-Connecting-IP": ip });
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 401 && !statuses.includes(429); i++) {
      last = await postForm("/par", fields, from("198.51.100.77"));
      statuses.push(last.status);
    }
    expectLimitedAfter(statuses, 201, 200);
    await expectError(last as Response, 429, "temporarily_unavailable", "too many requests; try again later");
    expect((await postForm("/par", fields, from("198.51.100.78"))).status).toBe(201);
  });

  it("limits registrations per IP", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 21 && !statuses.includes(429); i++) {
      const res = await call("/register", {
        method: "POST",
        headers: { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.9" },
        body: JSON.stringify({ redirect_uris: ["https://a.example/cb"] }),
      });
      statuses.push(res.status);
    }
    expectLimitedAfter(statuses, 201, 10);
  });

  it("refuses bodies over the limit with 413", async () => {
    const res = await call("/admin/users", {
      method: "POST",
      headers: { Authorization: "Bearer dev-admin-token", "Content-Type": "application/json" },
      body: "x".repeat(70_000),
    });
    await expectError(res, 413, "invalid_request", "the request body is too large");
    const form = await postForm("/token", { grant_type: "client_credentials", pad: "y".repeat(70_000) });
    await expectError(form, 413, "invalid_request", "the request body is too large");
  });
});
