import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../types";

/** OAuth 2.1 §3.2.3 / RFC 6749 §5.1: responses carrying tokens or credentials must not be cached. */
export const noStore: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  c.header("Cache-Control", "no-store");
  c.header("Pragma", "no-cache");
};

/** Headers every response carries (RFC 9700 §4.16 clickjacking; §4.2.4 referrer leakage). */
export const securityHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
  c.header("X-Frame-Options", "DENY");
  if (!c.res.headers.has("Content-Security-Policy")) {
    c.header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
  }
};
