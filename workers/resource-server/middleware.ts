import type { Context, MiddlewareHandler } from "hono";
import { metadataUrl } from "./metadata";
import type { AccessToken, VerifyResult } from "./verify";

/** The Hono variables the kit sets: the verified token. */
export interface TokenVariables {
  accessToken: AccessToken;
}

export interface RequireTokenOptions {
  /** From `createTokenVerifier`. */
  verify: (token: string) => Promise<VerifyResult>;
  /** This resource's identifier; its RFC 9728 metadata URL goes into every challenge. */
  resource: string;
  /** Scopes every request needs. A missing one answers 403 insufficient_scope. */
  scopes?: string[];
}

/** RFC 6750 §3 `WWW-Authenticate: Bearer …` with RFC 9728 §5.1 `resource_metadata`. */
export function challenge(resource: string, params: { error?: string; error_description?: string; scope?: string } = {}): string {
  const parts = [`resource_metadata="${metadataUrl(resource)}"`];
  for (const [name, value] of Object.entries(params)) if (value) parts.push(`${name}="${value.replaceAll('"', "'")}"`);
  return `Bearer ${parts.join(", ")}`;
}

/** 401: no token, or one that is not valid here. */
export function unauthorized(c: Context, resource: string, description?: string): Response {
  const body = description
    ? { error: "invalid_token", error_description: description }
    : { error: "invalid_token", error_description: "an access token is required" };
  c.header("WWW-Authenticate", challenge(resource, description ? { error: "invalid_token", error_description: description } : {}));
  return c.json(body, 401);
}

/**
 * 403 insufficient_scope naming what to ask for: the token's current scopes plus the missing ones, so
 * a client that re-authorizes with exactly that (as the MCP SDK does) keeps what it already had.
 */
export function insufficientScope(c: Context, resource: string, token: AccessToken, needed: string[]): Response {
  const scope = [...new Set([...token.scopes, ...needed])].join(" ");
  const description = `this request needs scope ${needed.join(" ")}`;
  c.header("WWW-Authenticate", challenge(resource, { error: "insufficient_scope", error_description: description, scope }));
  return c.json({ error: "insufficient_scope", error_description: description }, 403);
}

/**
 * Hono middleware: a valid Latchkey access token for this resource in the Authorization header
 * (never the query string: RFC 6750 §2.3, MCP authorization), with the required scopes. The token
 * stays here — it is never forwarded to another API (the MCP spec forbids token passthrough).
 */
export function requireAccessToken<E extends { Variables: TokenVariables } = { Variables: TokenVariables }>(
  options: RequireTokenOptions,
): MiddlewareHandler<E> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    const token = header ? /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header)?.[1] : undefined;
    if (!token) return unauthorized(c, options.resource, header ? "the Authorization header must carry a Bearer token" : undefined);
    const result = await options.verify(token);
    if (!result.ok) return unauthorized(c, options.resource, result.description);
    const missing = (options.scopes ?? []).filter((s) => !result.token.scopes.includes(s));
    if (missing.length) return insufficientScope(c, options.resource, result.token, missing);
    c.set("accessToken", result.token);
    await next();
  };
}
