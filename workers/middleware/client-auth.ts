import type { Context, MiddlewareHandler } from "hono";
import type { Client } from "../../schemas/client";
import { ATTESTATION_HEADER, authenticateByAttestation, CHALLENGE_HEADER, POP_HEADER, readAttestationHeaders } from "../attestation/authenticate";
import { currentChallenge } from "../attestation/challenge";
import { authenticateBySignature, HTTPSIG_CLIENT_AUTH, hasTokenRequestSignature } from "../clients/httpsig-auth";
import { markUsed } from "../clients/last-used";
import { authenticateByAssertion, type PresentedAssertion } from "../clients/private-key-jwt";
import { resolveClient } from "../clients/resolve";
import { now } from "../clock";
import { sha256, timingSafeEqualStrings } from "../crypto";
import { nonceToProvide } from "../dpop/accept";
import { InvalidClient, InvalidRequest, OAuthError } from "../errors";
import { log } from "../observe/log";
import type { AppEnv } from "../types";
import { clientIp } from "./rate-limit";

/**
 * Refusals a client corrects and retries, with the same client assertion if it likes (see `clientAuth`):
 * a malformed or refused parameter, a DPoP proof, a policy it can meet (`access_denied`: attest, then retry),
 * and a deliberate `server_error`/`temporarily_unavailable` that issued nothing. Not `invalid_grant`,
 * `invalid_client`, nor the poll answers (`authorization_pending`, `slow_down`), whose next poll brings a fresh
 * assertion anyway; an unexpected exception (no OAuthError) leaves the assertion spent too.
 */
const CORRECTABLE = new Set([
  "invalid_request",
  "invalid_target",
  "invalid_scope",
  "invalid_dpop_proof",
  "use_dpop_nonce",
  "unsupported_grant_type",
  "access_denied",
  "temporarily_unavailable",
  "server_error",
]);

type Presented =
  | { method: "none" | "client_secret_basic" | "client_secret_post"; client_id: string; secret?: string }
  | ({ method: "private_key_jwt" } & PresentedAssertion)
  | { method: "attestation"; client_id?: string; attestation?: string; pop?: string }
  | { method: typeof HTTPSIG_CLIENT_AUTH; client_id?: string };

/**
 * draft -11 §8.2: every response to a request carrying an attestation header, errors included (those of
 * middleware before client authentication too), gets the next `OAuth-Client-Attestation-Challenge`. First
 * on every endpoint that authenticates clients.
 */
export const attestationChallenge: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  if (c.req.header(ATTESTATION_HEADER) === undefined && c.req.header(POP_HEADER) === undefined) return;
  c.res.headers.set(CHALLENGE_HEADER, await currentChallenge(c.get("cfg").SESSION_SECRET, now()));
};

/**
 * Client authentication at the token, pushed authorization request, introspection and revocation
 * endpoints (OAuth 2.1 §2.4; RFC 9126 §2: "The rules for client authentication ... for token endpoint
 * requests ... apply for the PAR endpoint as well").
 * Finds which method the request uses (exactly one), resolves the client and checks it registered
 * that method. Every failure is `invalid_client` with 401; one presented in the Authorization header
 * gets a matching `WWW-Authenticate` challenge (RFC 6749 §5.2). A client assertion (RFC 7523 §2.2)
 * names its client itself and is checked by `clients/private-key-jwt.ts`; so does a Client Attestation
 * (draft-ietf-oauth-attestation-based-client-auth-11), checked by `attestation/authenticate.ts`; the
 * challenge header for it comes from `attestationChallenge`.
 * An HTTP message signature tagged `httpsig-oauth-token-request` (draft-richer-oauth-httpsig-03) is
 * checked by `clients/httpsig-auth.ts`, which also hands its key to the token endpoint in `c.get("httpsig")`
 * for binding.
 */
export const clientAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const presented = present(c);
  if (presented.method === "attestation") {
    const nonce = c.req.header("dpop") !== undefined ? await nonceToProvide(c) : undefined;
    let client: Client;
    try {
      client = await authenticateByAttestation(c, presented);
    } catch (error) {
      if (error instanceof OAuthError && nonce !== undefined) error.headers["DPoP-Nonce"] = nonce;
      throw error;
    }
    markUsed(c, client);
    c.set("client", client);
    c.set("auth_method", client.token_endpoint_auth_method);
    return next();
  }
  if (presented.method === HTTPSIG_CLIENT_AUTH) {
    const request = { method: c.req.method, url: c.req.url, headers: c.req.raw.headers, body: async () => new Uint8Array(await c.req.arrayBuffer()) };
    const { client, key } = await authenticateBySignature(c.env, c.get("cfg"), request, presented.client_id);
    markUsed(c, client);
    c.set("client", client);
    c.set("auth_method", presented.method);
    c.set("httpsig", key);
    return next();
  }
  if (presented.method === "private_key_jwt") {
    const { client, release } = await authenticateByAssertion(c.env, c.get("cfg"), presented);
    markUsed(c, client);
    c.set("client", client);
    c.set("auth_method", presented.method);
    await next();
    // A request refused for something the client can correct got nothing for its assertion, so the assertion
    // stays good for the corrected retry (clients such as the MCP SDK's resend the same one). Not after
    // `invalid_grant` and the like (a replayed code, a reused refresh token): there OIDC Core §9's single use
    // stands. Hono leaves the refusal in `c.error`. Should the give-back fail, the assertion stays spent.
    if (c.error instanceof OAuthError && CORRECTABLE.has(c.error.error)) {
      await release().catch((error) => log("warn", "assertion_release_failed", { request_id: c.get("request_id"), error: String(error) }));
    }
    return;
  }
  const fail = (description: string, detail?: string) => {
    const error = new InvalidClient(description, detail);
    if (presented.method === "client_secret_basic") error.headers["WWW-Authenticate"] = basicChallenge(c);
    return error;
  };
  const client = await resolveClient(c.env, presented.client_id);
  if (!client) throw fail("client authentication failed", `unknown client ${presented.client_id}`);
  if (client.token_endpoint_auth_method !== presented.method) {
    throw fail("client authentication failed", `client registered ${client.token_endpoint_auth_method}, used ${presented.method}`);
  }
  if (presented.secret !== undefined && !(await secretMatches(client, presented.secret))) {
    throw fail("client authentication failed", "wrong or expired secret");
  }
  markUsed(c, client);
  c.set("client", client);
  c.set("auth_method", presented.method);
  await next();
};

/** The client_id a request names (Basic header or body) before it is authenticated; for rate limiting. */
export function claimedClientId(c: Context<AppEnv>): string | undefined {
  const header = c.req.header("authorization");
  if (header?.match(/^basic(\s|$)/i)) return parseBasic(header)?.client_id;
  return c.get("params").get("client_id");
}

/**
 * The rate-limit key of a request before it is authenticated: the client it names, from the IP it comes from.
 * Keyed by the name alone, anyone could use up a client's budget by naming it from elsewhere and lock it out
 * (RFC 6749 §10.10: guessing must be made hard, not the client's service denied).
 */
export function claimedClientAndIp(c: Context<AppEnv>): string {
  return `${claimedClientId(c) ?? "-"}@${clientIp(c)}`;
}

/** RFC 7617 §2 (realm is required) with RFC 6749 §5.2: the challenge of a failed Basic authentication. */
function basicChallenge(c: Context<AppEnv>): string {
  return `Basic realm="${c.get("cfg").ISSUER}", charset="UTF-8"`;
}

function present(c: Context<AppEnv>): Presented {
  const authorization = c.req.header("authorization");
  const params = c.get("params");
  const headers = c.req.raw.headers;
  const bodyId = params.get("client_id");
  const bodySecret = params.get("client_secret");
  const assertion = params.get("client_assertion");
  const assertionType = params.get("client_assertion_type");
  const attested = readAttestationHeaders(headers);
  const methods = [
    authorization?.match(/^basic(\s|$)/i) ? "basic" : null,
    bodySecret ? "post" : null,
    assertion || assertionType ? "jwt" : null,
    attested.attestation || attested.pop ? "attestation" : null,
    hasTokenRequestSignature(headers) ? "httpsig" : null,
  ].filter(Boolean);
  // OAuth 2.1 §2.4: "The client MUST NOT use more than one authentication method in each request."
  if (methods.length > 1) throw new InvalidRequest("more than one client authentication method was used");
  if (methods[0] === "attestation") return { method: "attestation", ...(bodyId !== undefined ? { client_id: bodyId } : {}), ...attested };
  if (methods[0] === "httpsig") return { method: HTTPSIG_CLIENT_AUTH, client_id: bodyId };
  if (methods[0] === "jwt") {
    if (!assertion) throw new InvalidClient("client_assertion is missing");
    return { method: "private_key_jwt", client_id: bodyId, client_assertion: assertion, client_assertion_type: assertionType };
  }
  if (methods[0] === "basic") {
    const basic = parseBasic(authorization as string);
    if (!basic) {
      const error = new InvalidClient("malformed HTTP Basic client credentials");
      error.headers["WWW-Authenticate"] = basicChallenge(c);
      throw error;
    }
    if (bodyId !== undefined && bodyId !== basic.client_id) throw new InvalidRequest("client_id does not match the authenticated client");
    return { method: "client_secret_basic", ...basic };
  }
  if (bodyId === undefined) {
    // RFC 6749 §5.2: a client that tried the Authorization header (with a scheme other than Basic) gets the challenge.
    if (authorization === undefined) throw new InvalidClient("client authentication is required (client_id is missing)");
    const error = new InvalidClient("the Authorization header must carry HTTP Basic client credentials");
    error.headers["WWW-Authenticate"] = basicChallenge(c);
    throw error;
  }
  if (methods[0] === "post") return { method: "client_secret_post", client_id: bodyId, secret: bodySecret };
  return { method: "none", client_id: bodyId };
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64-encoded. */
function parseBasic(header: string): { client_id: string; secret: string } | null {
  try {
    const decoded = atob(header.slice(6).trim());
    const colon = decoded.indexOf(":");
    if (colon < 1) return null;
    const formDecode = (s: string) => decodeURIComponent(s.replaceAll("+", " "));
    return { client_id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    return null;
  }
}

async function secretMatches(client: Client, secret: string): Promise<boolean> {
  if (!client.client_secret_hash) return false;
  if (client.client_secret_expires_at && client.client_secret_expires_at <= now()) return false;
  return timingSafeEqualStrings(await sha256(secret), client.client_secret_hash);
}
