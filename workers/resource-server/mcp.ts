import type { Context } from "hono";
import { insufficientScope } from "./middleware";
import type { AccessToken } from "./verify";

/**
 * Scope checks per MCP tool, before the request reaches the MCP server: a `tools/call` for a tool
 * whose scope the token lacks is answered with HTTP 403 `insufficient_scope` (which MCP clients turn
 * into a step-up authorization), not with a JSON-RPC error they would just show to the model.
 * Returns the 403 response, or null when every call in the message is allowed.
 */
export function checkToolScopes(c: Context, resource: string, token: AccessToken, message: unknown, toolScopes: Record<string, string>): Response | null {
  const messages = Array.isArray(message) ? message : [message];
  const needed = new Set<string>();
  for (const m of messages) {
    if (typeof m !== "object" || m === null || (m as { method?: unknown }).method !== "tools/call") continue;
    const name = (m as { params?: { name?: unknown } }).params?.name;
    const scope = typeof name === "string" ? toolScopes[name] : undefined;
    if (scope && !token.scopes.includes(scope)) needed.add(scope);
  }
  return needed.size ? insufficientScope(c, resource, token, [...needed]) : null;
}
