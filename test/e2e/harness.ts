/**
 * The end-to-end harness (DESIGN.md "Tests, in two runtimes"): the authorization server Worker under
 * local workerd, started from Node with wrangler's `unstable_startWorker`, once per test file; a loopback
 * HTTP server standing in for a client's redirect URI; and headless Debian Chromium driven by
 * playwright-core through the real sign-in and consent pages.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { expect } from "vitest";
import { unstable_startWorker } from "wrangler";

export const ADMIN_TOKEN = "dev-admin-token";
/** The example MCP server the dev environment seeds as a resource (scopes mcp:read mcp:write). */
export const MCP_RESOURCE = "http://localhost:8788/mcp";
export const ALICE = { email: "alice@example.com", password: "alice-dev-password", sub: "usr_dev_alice" } as const;
export const BOB = { email: "bob@example.com", password: "bob-dev-password", sub: "usr_dev_bob" } as const;

const ROOT = join(import.meta.dirname, "..", "..");

// ── the authorization server ─────────────────────────────────────────────────────────────────

export interface AuthorizationServer {
  /** `http://localhost:<port>`: the configured ISSUER and the URL the server is reached at. */
  issuer: string;
  /** A request to the server; `path` is resolved against the issuer. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** What the Worker logged at error level: `app.ts` logs every unexpected error (server_error) there. */
  errors: string[];
  stop(): Promise<void>;
}

/**
 * A test file's `afterAll`: stops what it started, the server last, and checks that nothing inside the
 * Worker failed unexpectedly (`app.ts` logs such an error, then answers `server_error`).
 */
export async function stopAll(server: AuthorizationServer | undefined, ...others: Array<{ stop(): Promise<void> } | undefined>): Promise<void> {
  for (const other of others) await other?.stop();
  await server?.stop();
  expect(server?.errors ?? []).toEqual([]);
}

/** A port that was free a moment ago; wrangler needs it up front because the issuer names it. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts the Worker with the `dev` environment of wrangler.toml (seeded users, admin token, example
 * resource) and ISSUER overridden to `http://localhost:<port>`, plus any other `vars` (for example a
 * shorter OUTBOUND_FETCH_TIMEOUT_MS). Storage is in memory (`persist: false`), so each test file starts
 * from a freshly seeded server; no file watching, no inspector.
 */
export async function startServer(vars: Record<string, string> = {}): Promise<AuthorizationServer> {
  process.env.WRANGLER_SEND_METRICS = "false";
  process.env.WRANGLER_LOG ??= "warn";
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const errors: string[] = [];
  const worker = await unstable_startWorker({
    config: join(ROOT, "wrangler.toml"),
    env: "dev",
    envFiles: [],
    bindings: {
      ...Object.fromEntries(Object.entries(vars).map(([name, value]) => [name, { type: "plain_text" as const, value }])),
      ISSUER: { type: "plain_text", value: issuer },
    },
    dev: {
      server: { hostname: "127.0.0.1", port },
      inspector: false,
      persist: false,
      watch: false,
      liveReload: false,
      structuredLogsHandler(log: { level: string; message: string }) {
        if (log.level === "error") errors.push(log.message);
        if (log.level === "error" || log.level === "warn") console.error(`[worker ${log.level}] ${log.message}`);
      },
    },
  });
  try {
    await worker.ready;
    const url = await worker.url;
    expect(url.port).toBe(String(port));
  } catch (error) {
    await worker.dispose();
    throw error;
  }
  return {
    issuer,
    errors,
    fetch: (path, init) => fetch(new URL(path, issuer), { redirect: "manual", ...init }),
    stop: () => worker.dispose(),
  };
}

// ── the admin API ─────────────────────────────────────────────────────────────────────────────

/** RFC 7591 §3.2.1 client information as the admin API returns it. */
export interface RegisteredClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  token_endpoint_auth_method: string;
  grant_types: string[];
  [member: string]: unknown;
}

/** Registers a client with `POST /admin/clients` (RFC 7591 metadata) and returns what the server assigned. */
export async function createClient(server: AuthorizationServer, metadata: Record<string, unknown>): Promise<RegisteredClient> {
  const res = await server.fetch("/admin/clients", {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify(metadata),
  });
  const body = (await res.json()) as RegisteredClient;
  expect(res.status, JSON.stringify(body)).toBe(201);
  expect(res.headers.get("cache-control")).toBe("no-store");
  expect(body.client_id).toMatch(/^lk_/);
  return body;
}

// ── the client's redirect URI ────────────────────────────────────────────────────────────────

export interface CallbackServer {
  /** `http://127.0.0.1:<port>/callback`, to register as the client's redirect URI. */
  redirectUri: string;
  /** Every URL the server received, in order (absolute, with the query the browser brought). */
  received: URL[];
  stop(): Promise<void>;
}

/**
 * A loopback HTTP server standing in for a client's redirection endpoint: records the request URL
 * and answers with a small page, so the browser really lands at the client.
 */
export async function startCallbackServer(): Promise<CallbackServer> {
  const received: URL[] = [];
  const server: Server = createServer((req, res) => {
    const { port } = server.address() as AddressInfo;
    received.push(new URL(req.url ?? "/", `http://127.0.0.1:${port}`));
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>Client</title><h1>Back at the client</h1>");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    received,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

// ── the browser ──────────────────────────────────────────────────────────────────────────────

export interface TestBrowser {
  /** A fresh browser context (its own cookies): one person at one browser. */
  newPage(): Promise<Page>;
  stop(): Promise<void>;
}

/**
 * Debian's Chromium, headless; never a downloaded browser. Playwright gives each launch a fresh
 * user-data directory of its own in the temp dir (and removes it on close); it refuses
 * `--user-data-dir` in `args`.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ];
  const browser: Browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args });
  const contexts: BrowserContext[] = [];
  return {
    async newPage() {
      const context = await browser.newContext();
      contexts.push(context);
      return context.newPage();
    },
    async stop() {
      await browser.close();
    },
  };
}

/** On the sign-in page: fill in Email and Password and press Sign in. */
export async function signIn(page: Page, user: { email: string; password: string }): Promise<void> {
  await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Sign in");
  await page.getByLabel("Email").fill(user.email);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** On the consent page: press Allow or Deny. Returns the page's text, for asserting what it showed. */
export async function consent(page: Page, decision: "Allow" | "Deny"): Promise<string> {
  await page.getByRole("button", { name: decision }).waitFor();
  const heading = await page.getByRole("heading", { level: 1 }).textContent();
  expect(heading).toMatch(/^Allow .+ to access your account\?$/);
  // biome-ignore lint/performance/useDomNodeTextContent: a Playwright locator; rendered text keeps list items apart
  const text = await page.locator("main").innerText();
  await page.getByRole("button", { name: decision }).click();
  return text;
}

/**
 * Waits until the browser has landed on the client's redirect URI and returns the URL it carried,
 * checking that the callback server really received that same request.
 */
export async function landedAt(page: Page, callback: CallbackServer): Promise<URL> {
  await page.waitForURL((url) => url.href.startsWith(`${callback.redirectUri}?`));
  const url = new URL(page.url());
  expect(callback.received.map((u) => u.href)).toContain(url.href);
  return url;
}

// ── the example MCP server ───────────────────────────────────────────────────────────────────

export interface McpServerHandle {
  /** `http://localhost:<port>/mcp`: the MCP endpoint and the resource identifier. */
  resource: string;
  stop(): Promise<void>;
}

/**
 * Starts the example MCP Worker (workers/example-mcp) trusting `issuer`, and registers it with the
 * authorization server as a resource with scopes mcp:read and mcp:write.
 */
export async function startMcpServer(server: AuthorizationServer): Promise<McpServerHandle> {
  const port = await freePort();
  const resource = `http://localhost:${port}/mcp`;
  const worker = await unstable_startWorker({
    config: join(ROOT, "workers", "example-mcp", "wrangler.toml"),
    envFiles: [],
    bindings: { ISSUER: { type: "plain_text", value: server.issuer }, RESOURCE: { type: "plain_text", value: resource } },
    dev: { server: { hostname: "127.0.0.1", port }, inspector: false, persist: false, watch: false, liveReload: false },
  });
  await worker.ready;
  const res = await server.fetch("/admin/resources", {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ resource, name: "Example MCP server (test)", scopes_supported: ["mcp:read", "mcp:write"] }),
  });
  expect(res.status).toBe(201);
  return { resource, stop: () => worker.dispose() };
}
