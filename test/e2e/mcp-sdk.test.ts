/**
 * The point of Latchkey, shown with the client people actually use: the MCP SDK's client, with its
 * own OAuth support, connects to the example MCP server from nothing — discovery from the server's
 * 401, dynamic registration, sign-in and consent in a real browser, tokens, tools — and steps up when
 * a tool needs a scope it does not have yet.
 */
import * as v2 from "@modelcontextprotocol/client";
import { UnauthorizedError as V1UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { decodeJwt } from "jose";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALICE,
  type AuthorizationServer,
  type CallbackServer,
  consent,
  landedAt,
  launchBrowser,
  type McpServerHandle,
  signIn,
  startCallbackServer,
  startMcpServer,
  startServer,
  stopAll,
  type TestBrowser,
} from "./harness";

let server: AuthorizationServer;
let mcp: McpServerHandle;
let callback: CallbackServer;
let browser: TestBrowser;

beforeAll(async () => {
  server = await startServer();
  mcp = await startMcpServer(server);
  callback = await startCallbackServer();
  browser = await launchBrowser();
});

afterAll(() => stopAll(server, browser, callback, mcp));

/**
 * An in-memory OAuth client provider, as an MCP host keeps one per server; it records what the SDK
 * asked for. The same object serves both SDK generations (their provider interfaces agree here).
 */
class MemoryProvider {
  info?: { client_id: string; [k: string]: unknown };
  saved?: { access_token: string; refresh_token?: string; [k: string]: unknown };
  verifier = "";
  authorizationUrls: URL[] = [];

  constructor(
    private readonly redirect: string,
    private readonly grantTypes: string[] = ["authorization_code", "refresh_token"],
  ) {}

  get redirectUrl() {
    return this.redirect;
  }
  get clientMetadata() {
    return {
      client_name: "MCP SDK test host",
      redirect_uris: [this.redirect],
      grant_types: this.grantTypes,
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info: { client_id: string }) {
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: { access_token: string }) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrls.push(url);
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/** What the test needs from an MCP SDK generation: connect with a provider, finish authorization. */
interface Session {
  callTool(name: string, args: Record<string, unknown>): Promise<unknown>;
  listTools(): Promise<{ tools: Array<{ name: string }> }>;
  close(): Promise<void>;
}

interface Sdk {
  name: string;
  connect(provider: MemoryProvider): Promise<Session>;
  finishAuth(provider: MemoryProvider, callback: URLSearchParams): Promise<void>;
  isUnauthorized(error: unknown): boolean;
}

// The providers are structurally what each SDK expects; the casts only bridge the two type packages.
type V1Provider = ConstructorParameters<typeof V1Transport>[1] extends infer O ? (O extends { authProvider?: infer P } ? P : never) : never;
type V2Provider = ConstructorParameters<typeof v2.StreamableHTTPClientTransport>[1] extends infer O
  ? O extends { authProvider?: infer P }
    ? P
    : never
  : never;

const sdks: Sdk[] = [
  {
    name: "@modelcontextprotocol/sdk 1.x",
    async connect(provider) {
      const client = new V1Client({ name: "latchkey-e2e", version: "1.0.0" });
      await client.connect(new V1Transport(new URL(mcp.resource), { authProvider: provider as unknown as V1Provider }));
      return { callTool: (name, args) => client.callTool({ name, arguments: args }), listTools: () => client.listTools(), close: () => client.close() };
    },
    finishAuth: (provider, callback) =>
      new V1Transport(new URL(mcp.resource), { authProvider: provider as unknown as V1Provider }).finishAuth(callback.get("code") as string),
    isUnauthorized: (error) => error instanceof V1UnauthorizedError,
  },
  {
    name: "@modelcontextprotocol/client 2.x",
    async connect(provider) {
      const client = new v2.Client({ name: "latchkey-e2e", version: "1.0.0" });
      await client.connect(new v2.StreamableHTTPClientTransport(new URL(mcp.resource), { authProvider: provider as unknown as V2Provider }));
      return { callTool: (name, args) => client.callTool({ name, arguments: args }), listTools: () => client.listTools(), close: () => client.close() };
    },
    finishAuth: (provider, callback) =>
      new v2.StreamableHTTPClientTransport(new URL(mcp.resource), { authProvider: provider as unknown as V2Provider }).finishAuth(callback),
    isUnauthorized: (error) => error instanceof v2.UnauthorizedError,
  },
];

/** Where a user at the browser takes the authorization URL the SDK produced; returns the callback query. */
async function authorizeInBrowser(page: Page, url: URL, opts: { signIn: boolean }): Promise<{ callback: URLSearchParams; consentText: string }> {
  await page.goto(url.href);
  if (opts.signIn) await signIn(page, ALICE);
  const consentText = await consent(page, "Allow");
  const landed = await landedAt(page, callback);
  expect(landed.searchParams.get("iss")).toBe(server.issuer);
  return { callback: landed.searchParams, consentText };
}

async function expectUnauthorized(sdk: Sdk, action: Promise<unknown>): Promise<void> {
  const error = await action.then(
    () => null,
    (e: unknown) => e,
  );
  expect(sdk.isUnauthorized(error), String(error)).toBe(true);
}

function text(result: unknown): string {
  const content = (result as { content: Array<{ type: string; text: string }> }).content;
  return content[0]?.text ?? "";
}

/**
 * The whole story for one SDK: from nothing to tools, then step-up for transfer. `grantTypes` is what
 * the host registers; the 1.x SDK can step up only without a refresh token (see the last test).
 */
async function fromNothingToStepUp(sdk: Sdk, grantTypes: string[], extraScopes: string[] = []): Promise<void> {
  const asked = (url: URL) => url.searchParams.get("scope")?.split(" ").sort();
  const provider = new MemoryProvider(callback.redirectUri, grantTypes);
  const page = await browser.newPage();

  // 1. From nothing: the 401 leads the SDK to the resource metadata, the issuer, and registration.
  await expectUnauthorized(sdk, sdk.connect(provider));
  expect(provider.info?.client_id).toMatch(/^lk_/);
  const first = provider.authorizationUrls[0] as URL;
  expect(`${first.origin}${first.pathname}`).toBe(`${server.issuer}/authorize`);
  expect(first.searchParams.get("resource")).toBe(mcp.resource);
  expect(asked(first)).toEqual(["mcp:read", ...extraScopes].sort());
  expect(first.searchParams.get("code_challenge_method")).toBe("S256");

  // 2. The user signs in and allows; the SDK exchanges the code.
  const signedIn = await authorizeInBrowser(page, first, { signIn: true });
  expect(signedIn.consentText).toContain("MCP SDK test host");
  expect(signedIn.consentText).toContain("mcp:read");
  expect(signedIn.consentText).toContain(mcp.resource);
  await sdk.finishAuth(provider, signedIn.callback);
  const claims = decodeJwt(provider.saved?.access_token as string);
  expect(claims).toMatchObject({ iss: server.issuer, aud: mcp.resource, sub: ALICE.sub, client_id: provider.info?.client_id, scope: "mcp:read" });
  expect(Boolean(provider.saved?.refresh_token)).toBe(grantTypes.includes("refresh_token"));

  // 3. Connected: list the tools and ask who we are.
  const client = await sdk.connect(provider);
  const tools = await client.listTools();
  expect(tools.tools.map((t) => t.name).sort()).toEqual(["transfer", "whoami"]);
  const who = JSON.parse(text(await client.callTool("whoami", {})));
  expect(who).toEqual({ sub: ALICE.sub, client_id: provider.info?.client_id, scopes: ["mcp:read"] });

  // 4. transfer needs mcp:write: the server answers 403 insufficient_scope and the SDK asks for more.
  await expectUnauthorized(sdk, client.callTool("transfer", { amount: 5, to: "bob" }));
  const stepUp = provider.authorizationUrls[1] as URL;
  expect(asked(stepUp)).toEqual(["mcp:read", "mcp:write", ...extraScopes].sort());
  expect(stepUp.searchParams.get("resource")).toBe(mcp.resource);
  // Still signed in: only the consent page, now naming mcp:write.
  const upgraded = await authorizeInBrowser(page, stepUp, { signIn: false });
  expect(upgraded.consentText).toContain("mcp:write");
  await sdk.finishAuth(provider, upgraded.callback);
  expect(
    decodeJwt(provider.saved?.access_token as string)
      .scope?.toString()
      .split(" ")
      .sort(),
  ).toEqual(["mcp:read", "mcp:write"]);

  // 5. With the new token, the same call succeeds, and whoami still works.
  const again = await sdk.connect(provider);
  expect(text(await again.callTool("transfer", { amount: 5, to: "bob" }))).toBe(`transferred 5 to bob on behalf of ${ALICE.sub}`);
  expect(JSON.parse(text(await again.callTool("whoami", {}))).scopes.sort()).toEqual(["mcp:read", "mcp:write"]);
  await again.close();
  await client.close();
}

describe("MCP SDK clients against the example MCP server", () => {
  it("@modelcontextprotocol/client 2.x: discovery, registration, real pages, tools, and step-up with a refresh token held", async () => {
    // 2.x asks for offline_access when it wants a refresh token and the server lists it (SEP-2207).
    await fromNothingToStepUp(sdks[1] as Sdk, ["authorization_code", "refresh_token"], ["offline_access"]);
  });

  it("@modelcontextprotocol/sdk 1.x: discovery, registration, real pages, tools, and step-up", async () => {
    await fromNothingToStepUp(sdks[0] as Sdk, ["authorization_code"]);
  });

  it("@modelcontextprotocol/sdk 1.x with a refresh token gets a working token after sign-in", async () => {
    // 1.x answers a 403 insufficient_scope by refreshing, which can never widen scope (RFC 6749 §6),
    // then gives up (typescript-sdk issue #2255, fixed in @modelcontextprotocol/client 2.x). The
    // server side is right to refuse the widening; here we check the 1.x flow up to that point.
    const sdk = sdks[0] as Sdk;
    const provider = new MemoryProvider(callback.redirectUri);
    await expectUnauthorized(sdk, sdk.connect(provider));
    const page = await browser.newPage();
    const { callback: cb } = await authorizeInBrowser(page, provider.authorizationUrls[0] as URL, { signIn: true });
    await sdk.finishAuth(provider, cb);
    expect(provider.saved?.refresh_token).toMatch(/^lkr_/);
    const client = await sdk.connect(provider);
    expect(JSON.parse(text(await client.callTool("whoami", {}))).sub).toBe(ALICE.sub);
    await client.close();
  });

  it("answers 403 insufficient_scope with the scope to ask for, over plain HTTP", async () => {
    const sdk = sdks[1] as Sdk;
    const provider = new MemoryProvider(callback.redirectUri);
    await expectUnauthorized(sdk, sdk.connect(provider));
    const page = await browser.newPage();
    const { callback: cb } = await authorizeInBrowser(page, provider.authorizationUrls[0] as URL, { signIn: true });
    await sdk.finishAuth(provider, cb);
    const res = await fetch(mcp.resource, {
      method: "POST",
      headers: { Authorization: `Bearer ${provider.saved?.access_token}`, "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "transfer", arguments: { amount: 1, to: "x" } } }),
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("www-authenticate")).toBe(
      `Bearer resource_metadata="${mcp.resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")}", error="insufficient_scope", error_description="this request needs scope mcp:write", scope="mcp:read mcp:write"`,
    );
    const noToken = await fetch(mcp.resource, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    expect(noToken.status).toBe(401);
  });

  it("lets a browser-based client on another origin discover it and read its challenges (CORS)", async () => {
    const origin = "https://inspector.example";
    const preflight = await fetch(mcp.resource, {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    const challenged = await fetch(mcp.resource, { method: "POST", headers: { Origin: origin, "Content-Type": "application/json" }, body: "{}" });
    expect(challenged.status).toBe(401);
    expect(challenged.headers.get("access-control-allow-origin")).toBe("*");
    expect(challenged.headers.get("access-control-expose-headers")).toContain("WWW-Authenticate");
    expect(challenged.headers.get("access-control-expose-headers")).toContain("Retry-After");
    const metadata = await fetch(mcp.resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"), { headers: { Origin: origin } });
    expect(metadata.headers.get("access-control-allow-origin")).toBe("*");
  });
});
