import type { MiddlewareHandler } from "hono";
import { OAuthError } from "../errors";
import type { AuditRecord } from "../observe/audit";
import { log } from "../observe/log";
import type { AppEnv } from "../types";

/**
 * Gives every request an id (echoed as `X-Request-Id` on every response, errors included) and writes
 * one log line per request that failed (every request with LOG_REQUESTS=all): method, path (never the
 * query, which may carry codes), status, duration, the OAuth error and its internal detail if it was
 * refused (a deliberate 503 included), and the audit events it produced (`observe/audit.ts`). Only a
 * failure (`server_error`) adds a line: its internal detail and stack. Audit events reach Analytics Engine whether or not the line is written.
 */
export const requestContext: MiddlewareHandler<AppEnv> = async (c, next) => {
  const request_id = crypto.randomUUID();
  const started = Date.now();
  const trail: AuditRecord[] = [];
  c.set("request_id", request_id);
  c.set("audit_trail", trail);
  await next();
  c.res.headers.set("X-Request-Id", request_id);
  // A request that failed before the configuration was read is logged whatever it says.
  if (c.res.status < 400 && c.get("cfg")?.LOG_REQUESTS !== "all") return;
  // Hono leaves an error it turned into the response (`app.ts` onError) in `c.error`.
  const refused = c.error instanceof OAuthError && c.error.error !== "server_error" ? c.error : undefined;
  log(c.res.status >= 500 ? "error" : "info", "request", {
    request_id,
    method: c.req.method,
    path: c.req.path,
    status: c.res.status,
    ms: Date.now() - started,
    ...(refused ? { error: refused.error, ...(refused.detail ? { detail: refused.detail } : {}) } : {}),
    ...(trail.length ? { audit: trail } : {}),
  });
};
