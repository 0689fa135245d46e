import type { Context, MiddlewareHandler } from "hono";
import { checkDpop, DPOP_ALGS, type DpopOptions } from "./dpop";
import { checkHttpsig, type HttpsigOptions } from "./httpsig";
import { metadataUrl } from "./metadata";
import type { AccessToken, VerifyResult } from "./verify";

/** The Hono variables the kit sets: the verified token. */
export interface TokenVariables {
  accessToken: AccessToken;
}

export interface RequireTokenOptions {
  /** From `createTokenVerifier`. */
  verify: (token: string) => Promise<VerifyResult>;
  /** This resource's identifier; its RFC 9728 metadata URL goes into every challenge, its origin into DPoP `htu` checks. */
  resource: string;
  /** Scopes every request needs. A missing one answers 403 insufficient_scope. */
  scopes?: string[];
  /** DPoP (RFC 9449) settings, above all the replay hook `claimProof`; see `DpopOptions`. */
  dpop?: DpopOptions;
  /** HTTP message signature bound tokens (draft-richer-oauth-httpsig), above all the replay hook `claimNonce`; see `HttpsigOptions`. */
  httpsig?: HttpsigOptions;
}

/** The authentication scheme a token came with: RFC 6750 Bearer, RFC 9449 DPoP or draft-richer-oauth-httpsig HTTPSig. */
export type Scheme = "Bearer" | "DPoP" | "HTTPSig";

type ChallengeParams = { error?: string; error_description?: string; scope?: string };

/**
 * One challenge: RFC 6750 §3 `Bearer …` or RFC 9449 §7.1 `DPoP …, algs="…"`, each with RFC 9728 §5.1
 * `resource_metadata`.
 */
export function challenge(resource: string, params: ChallengeParams = {}, scheme: Scheme = "Bearer", algs: readonly string[] = DPOP_ALGS): string {
  const parts = [`resource_metadata="${metadataUrl(resource)}"`];
  for (const [name, value] of Object.entries(params)) if (value) parts.push(`${name}="${value.replaceAll('"', "'")}"`);
  if (scheme === "DPoP") parts.push(`algs="${algs.join(" ")}"`);
  return `${scheme} ${parts.join(", ")}`;
}

/** How a refusal is challenged: in the scheme the client used (RFC 9449 §7.2), optionally offering DPoP beside Bearer. */
export interface ChallengeOptions {
  scheme?: Scheme;
  /** Add a bare DPoP challenge after a Bearer one: the client may do better with DPoP. */
  offerDpop?: boolean;
  algs?: readonly string[];
  /**
   * The scopes to ask for (RFC 6750 §3 `scope`), named in the bare challenge to a request without
   * credentials: MCP clients use it before the metadata's `scopes_supported` when they first authorize.
   */
  scope?: readonly string[];
}

function header(resource: string, params: ChallengeParams, o: ChallengeOptions): string {
  const scope = params.scope ?? (o.scope?.length ? o.scope.join(" ") : undefined);
  const withScope = scope ? { ...params, scope } : params;
  const main = challenge(resource, withScope, o.scheme ?? "Bearer", o.algs);
  return o.offerDpop && o.scheme !== "DPoP" ? `${main}, ${challenge(resource, scope ? { scope } : {}, "DPoP", o.algs)}` : main;
}

/** 400: RFC 6750 §3.1 `invalid_request`, a malformed request. */
function malformed(c: Context, resource: string, description: string): Response {
  c.header("WWW-Authenticate", challenge(resource, { error: "invalid_request", error_description: description }));
  return c.json({ error: "invalid_request", error_description: description }, 400);
}

/**
 * 503: the issuer's keys could not be had, so the token could not be checked. Not RFC 6750 `invalid_token`
 * (§3.1: "expired, revoked, malformed, or invalid for other reasons"): MCP clients answer that by refreshing or
 * re-authorizing, which would turn a JWKS outage into a storm against the authorization server. RFC 9110
 * §15.6.4: the server "MAY send a Retry-After header field ... to suggest an appropriate amount of time
 * for the client to wait before retrying the request".
 */
function unavailable(c: Context, description: string, retryAfterSeconds: number): Response {
  c.header("Retry-After", String(retryAfterSeconds));
  c.header("Cache-Control", "no-store");
  return c.json({ error: "temporarily_unavailable", error_description: description }, 503);
}

/**
 * 401: no token (a bare challenge per accepted scheme, RFC 9449 §7.2 Figure 17: Bearer and DPoP, or DPoP
 * alone when `o.scheme` is DPoP), or one that is not valid here. `error` is `invalid_token` unless a DPoP
 * proof was the problem (`invalid_dpop_proof`).
 */
export function unauthorized(c: Context, resource: string, description?: string, o: ChallengeOptions & { error?: string } = {}): Response {
  if (!description) {
    c.header("WWW-Authenticate", header(resource, {}, { ...o, offerDpop: true }));
    return c.json({ error: "invalid_token", error_description: "an access token is required" }, 401);
  }
  const error = o.error ?? "invalid_token";
  c.header("WWW-Authenticate", header(resource, { error, error_description: description }, o));
  return c.json({ error, error_description: description }, 401);
}

/**
 * 403 insufficient_scope naming what to ask for: the token's current scopes plus the missing ones, so
 * a client that re-authorizes with exactly that (as the MCP SDK does) keeps what it already had. The
 * challenge scheme follows the token: DPoP for a DPoP-bound one (the only way it is accepted).
 */
export function insufficientScope(c: Context, resource: string, token: AccessToken, needed: string[], algs: readonly string[] = DPOP_ALGS): Response {
  const scope = [...new Set([...token.scopes, ...needed])].join(" ");
  const description = `this request needs scope ${needed.join(" ")}`;
  const scheme: Scheme = token.cnf?.jkt ? "DPoP" : token.cnf?.jwk ? "HTTPSig" : "Bearer";
  c.header("WWW-Authenticate", challenge(resource, { error: "insufficient_scope", error_description: description, scope }, scheme, algs));
  return c.json({ error: "insufficient_scope", error_description: description }, 403);
}

/**
 * Hono middleware: a valid Latchkey access token for this resource in the Authorization header
 * (never the query string: RFC 6750 §2.3, MCP authorization), with the required scopes. A DPoP-bound
 * token must come with the DPoP scheme and a proof for this request by its key (RFC 9449 §7); sent as
 * Bearer it is refused (§7.2). A token bound by `cnf.jwk` must come as `Authorization: HTTPSig <token>`
 * with a signature by that key (draft-richer-oauth-httpsig §5, `resource-server/httpsig.ts`), and is
 * refused in any other scheme. When the issuer's keys cannot be had the answer is 503 with `Retry-After`,
 * not a refusal. The token stays here — it is never forwarded to another API (the MCP spec forbids
 * token passthrough).
 */
export function requireAccessToken<E extends { Variables: TokenVariables } = { Variables: TokenVariables }>(
  options: RequireTokenOptions,
): MiddlewareHandler<E> {
  const { resource, dpop = {}, httpsig = {} } = options;
  const algs = dpop.algorithms ?? DPOP_ALGS;
  return async (c, next) => {
    const authorization = c.req.header("authorization");
    // With requireDpop only the DPoP scheme is offered.
    const scope = options.scopes;
    // RFC 6750 §3.1: another scheme (Basic, say) is no token at all, answered with the bare challenge.
    if (!authorization || !/^(Bearer|DPoP|HTTPSig)( |$)/i.test(authorization)) {
      return unauthorized(c, resource, undefined, { algs, scope, scheme: dpop.requireDpop ? "DPoP" : "Bearer" });
    }
    const m = /^(Bearer|DPoP|HTTPSig) ([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization);
    if (!m) return malformed(c, resource, "the Authorization header must be the scheme, one space and the token");
    // RFC 9110 §11.1: authentication schemes are case-insensitive (the draft §5 lists "hTtPsIg" among equals).
    const scheme = ({ dpop: "DPoP", httpsig: "HTTPSig" } as Record<string, Scheme>)[(m[1] as string).toLowerCase()] ?? "Bearer";
    const token = m[2] as string;
    const refuse = (description: string, o: ChallengeOptions & { error?: string } = {}) => unauthorized(c, resource, description, { scheme, algs, ...o });
    const result = await options.verify(token);
    if (!result.ok) return "unavailable" in result ? unavailable(c, result.description, result.retryAfterSeconds) : refuse(result.description);
    const jkt = result.token.cnf?.jkt;
    const jwk = result.token.cnf?.jwk;
    // draft-richer-oauth-httpsig §4: "All presentations of this token at any RS MUST contain an HTTP message signature".
    if (jwk && scheme !== "HTTPSig")
      return refuse("the access token is bound to an HTTP message signature key; send it with the HTTPSig scheme and a signature");
    if (scheme === "HTTPSig") {
      if (!jwk) return refuse("the access token is not bound to an HTTP message signature key");
      const signed = await checkHttpsig(c, resource, jwk, httpsig);
      if (!signed.ok) return refuse(signed.description);
    } else if (scheme === "Bearer") {
      // RFC 9449 §7.2: a resource supporting both schemes "MUST reject a DPoP-bound access token received as a bearer token".
      if (jkt) return refuse("the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof", { offerDpop: true });
      if (dpop.requireDpop) return refuse("this resource accepts only DPoP-bound access tokens", { offerDpop: true });
    } else {
      if (!jkt) return refuse("the access token is not DPoP-bound; send it with the Bearer scheme");
      const proof = await checkDpop(c, resource, token, jkt, dpop);
      if (!proof.ok) return refuse(proof.description, { error: proof.error });
    }
    const missing = (options.scopes ?? []).filter((s) => !result.token.scopes.includes(s));
    if (missing.length) return insufficientScope(c, resource, result.token, missing, algs);
    c.set("accessToken", result.token);
    await next();
  };
}
