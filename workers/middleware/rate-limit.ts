import type { Context, MiddlewareHandler } from "hono";
import { RateLimited } from "../errors";
import { audit } from "../observe/audit";
import type { AppEnv } from "../types";

/** Every rate limit in wrangler.toml counts per minute. */
const PERIOD_SECONDS = 60;

/**
 * The client's IP as Cloudflare reports it. Requests that do not come through Cloudflare's edge (local
 * tools, tests) have none and share the key `local`.
 */
export function clientIp(c: Context<AppEnv>): string {
  return c.req.header("cf-connecting-ip") ?? "local";
}

/** Whether `key` is still under the limit; records one more use of it. */
export async function underLimit(limiter: RateLimit, key: string): Promise<boolean> {
  return (await limiter.limit({ key })).success;
}

/** The 429 a limited request gets, recorded in the audit trail. */
export function rateLimited(c: Context<AppEnv>, what: string): RateLimited {
  audit(c, { event: "rate_limited", outcome: "failure", detail: what });
  const error = new RateLimited("too many requests; try again later");
  error.headers["Retry-After"] = String(PERIOD_SECONDS);
  return error;
}

/**
 * Middleware: at most the configured number of requests per minute per key (Workers rate limiting
 * binding, enforced per Cloudflare location). `key` names what is limited: an IP, a client.
 */
export function rateLimit(what: string, limiter: (env: Env) => RateLimit, key: (c: Context<AppEnv>) => string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!(await underLimit(limiter(c.env), `${what}:${key(c)}`))) throw rateLimited(c, what);
    await next();
  };
}
