import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "../types";

/**
 * Sets headers on the response the handler built, in place. Hono's `c.header()` after the response
 * exists copies the whole Response for every header (in case its headers are immutable, as a
 * fetched response's are); every response here is built by the context, so that cost is pure waste
 * on the hot path. A response with immutable headers still gets them, through `c.header()`.
 */
function setHeaders(c: Context<AppEnv>, headers: ReadonlyArray<readonly [string, string]>): void {
  try {
    for (const [name, value] of headers) c.res.headers.set(name, value);
  } catch {
    for (const [name, value] of headers) c.header(name, value);
  }
}

const NO_STORE = [
  ["Cache-Control", "no-store"],
  ["Pragma", "no-cache"],
] as const;

/** OAuth 2.1 §3.2.3 / RFC 6749 §5.1: responses carrying tokens or credentials must not be cached. */
export const noStore: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  setHeaders(c, NO_STORE);
};

const SECURITY = [
  ["X-Content-Type-Options", "nosniff"],
  ["Referrer-Policy", "no-referrer"],
  ["X-Frame-Options", "DENY"],
] as const;
const DEFAULT_CSP = [["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"]] as const;

/** Headers every response carries (RFC 9700 §4.16 clickjacking; §4.2.4 referrer leakage). */
export const securityHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  setHeaders(c, SECURITY);
  if (!c.res.headers.has("Content-Security-Policy")) setHeaders(c, DEFAULT_CSP);
};

const preflight = cors({
  origin: "*",
  allowMethods: ["GET", "POST", "PUT", "DELETE"],
  allowHeaders: [
    "Authorization",
    "Content-Type",
    "DPoP",
    "OAuth-Client-Attestation",
    "OAuth-Client-Attestation-PoP",
    "Signature",
    "Signature-Input",
    "Content-Digest",
  ],
  maxAge: 600,
});
// RFC 9449 §7.1 and §8, attestation §8.2: browser clients can read these only if they are exposed.
const ANY_ORIGIN = [
  ["Access-Control-Allow-Origin", "*"],
  ["Access-Control-Expose-Headers", "WWW-Authenticate,DPoP-Nonce,OAuth-Client-Attestation-Challenge"],
] as const;

/**
 * CORS for the endpoints browser-based clients call directly: every origin, no credentials. Preflights
 * are Hono's `cors()`; an actual request only needs `Access-Control-Allow-Origin: *`, which is set in
 * place (Hono's `cors()` would build an empty response first and copy it into the real one).
 */
export const apiCors: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "OPTIONS") return preflight(c, next);
  await next();
  setHeaders(c, ANY_ORIGIN);
};
