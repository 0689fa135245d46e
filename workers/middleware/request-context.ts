import type { MiddlewareHandler } from "hono";
import { log } from "../observe/log";
import type { AppEnv } from "../types";

/**
 * Gives every request an id (echoed as `X-Request-Id` on every response, errors included) and writes
 * one request log line: method, path (never the query, which may carry codes), status and duration.
 */
export const requestContext: MiddlewareHandler<AppEnv> = async (c, next) => {
  const request_id = crypto.randomUUID();
  const started = Date.now();
  c.set("request_id", request_id);
  await next();
  c.res.headers.set("X-Request-Id", request_id);
  log(c.res.status >= 500 ? "error" : "info", "request", {
    request_id,
    method: c.req.method,
    path: new URL(c.req.url).pathname,
    status: c.res.status,
    ms: Date.now() - started,
  });
};
