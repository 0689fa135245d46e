import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { z } from "zod";
import {
  type AccessToken,
  checkToolScopes,
  createTokenVerifier,
  DPOP_ALGS,
  metadataPath,
  type ProtectedResourceMetadata,
  requireAccessToken,
  type TokenVariables,
} from "../resource-server";

/**
 * An example MCP server protected by Latchkey. Its whole security job is the resource-server kit:
 * verify the token, publish RFC 9728 metadata, and challenge for the scope a tool needs.
 * Tools: `whoami` (mcp:read) returns who the token speaks for; `transfer` (mcp:write) pretends to move money.
 * DPoP-bound tokens are verified with their proofs; this demo has no store for proof ids, so it gives the
 * kit no `dpop.claimProof` and a captured proof could be replayed within its 60-second window — a real
 * server binds a Durable Object for that (see the kit's index.ts).
 */
type AppEnv = { Bindings: ExampleMcpEnv; Variables: TokenVariables };

/** The scope each tool needs; the kit turns a missing one into 403 insufficient_scope before the call runs. */
const TOOL_SCOPES = { whoami: "mcp:read", transfer: "mcp:write" };

let verifier: { key: string; verify: ReturnType<typeof createTokenVerifier> } | undefined;
function verify(env: ExampleMcpEnv) {
  const key = `${env.ISSUER} ${env.RESOURCE}`;
  if (verifier?.key !== key) verifier = { key, verify: createTokenVerifier({ issuer: env.ISSUER, resource: env.RESOURCE }) };
  return verifier.verify;
}

function mcpServer(token: AccessToken): McpServer {
  const server = new McpServer({ name: "latchkey-example-mcp", version: "1.0.0" });
  server.registerTool("whoami", { description: "Who this session acts for: the token's subject, client and scopes." }, async () => ({
    content: [{ type: "text", text: JSON.stringify({ sub: token.sub, client_id: token.client_id, scopes: token.scopes }) }],
  }));
  server.registerTool(
    "transfer",
    {
      description: "Move an amount between two accounts (a demonstration; nothing moves).",
      inputSchema: { amount: z.number().positive(), to: z.string().min(1) },
    },
    async ({ amount, to }) => ({ content: [{ type: "text", text: `transferred ${amount} to ${to} on behalf of ${token.sub}` }] }),
  );
  return server;
}

const app = new Hono<AppEnv>();

// Browser-based MCP clients on other origins: they must read the metadata, the WWW-Authenticate challenge
// and the session id, and send their credentials; a preflight is answered before any token is asked for.
app.use(
  "*",
  cors({
    origin: "*",
    allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
    allowHeaders: ["Authorization", "DPoP", "Content-Type", "Accept", "Mcp-Protocol-Version", "Mcp-Session-Id", "Last-Event-ID"],
    exposeHeaders: ["WWW-Authenticate", "DPoP-Nonce", "Retry-After", "Mcp-Session-Id", "Mcp-Protocol-Version"],
    maxAge: 600,
  }),
);

app.get("/.well-known/oauth-protected-resource/*", (c) => {
  if (new URL(c.req.url).pathname !== metadataPath(c.env.RESOURCE)) return c.json({ error: "not_found" }, 404);
  const metadata: ProtectedResourceMetadata = {
    resource: c.env.RESOURCE,
    authorization_servers: [c.env.ISSUER],
    scopes_supported: ["mcp:read", "mcp:write"],
    bearer_methods_supported: ["header"],
    dpop_signing_alg_values_supported: [...DPOP_ALGS],
    resource_name: "Latchkey example MCP server",
  };
  return c.json(metadata, 200, { "Cache-Control": "public, max-age=300" });
});

app.all("/mcp", (c, next) => requireAccessToken<AppEnv>({ verify: verify(c.env), resource: c.env.RESOURCE, scopes: ["mcp:read"] })(c, next));

app.post("/mcp", async (c) => {
  const token = c.get("accessToken");
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return c.json({ jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null }, 400);
  }
  const refused = checkToolScopes(c, c.env.RESOURCE, token, body, TOOL_SCOPES);
  if (refused) return refused;
  // Stateless: one server and transport per request, so any isolate can answer any request.
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  await mcpServer(token).connect(transport);
  return transport.handleRequest(c.req.raw, {
    parsedBody: body,
    authInfo: { token: "", clientId: token.client_id, scopes: token.scopes, expiresAt: token.exp, extra: { sub: token.sub } },
  });
});

// Stateless servers offer no SSE stream and no sessions to delete (MCP Streamable HTTP §GET, §DELETE).
app.on(["GET", "DELETE"], "/mcp", (c) => c.json({ jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed." }, id: null }, 405, { Allow: "POST" }));

export default app;
