import type { Client } from "../../schemas/client";
import { matchRedirectUri } from "../clients/redirect-uri";
import { now } from "../clock";
import { config } from "../config";
import { InvalidRequest, OAuthError, RequestNotSupported, RequestUriNotSupported, UnauthorizedClient, UnsupportedResponseType } from "../errors";
import type { Params } from "../middleware/form-body";
import { decide, parseResources, parseScope } from "../policy/scope";
import { idTokenHintSubject } from "../tokens/id-token";

/** A validated authorization request (OAuth 2.1 §4.1.1, OIDC Core §3.1.2.1, RFC 8707). */
export interface AuthorizationRequest {
  client_id: string;
  redirect_uri: string;
  state?: string;
  scope: string[];
  resources: string[];
  /** PKCE S256 challenge. */
  code_challenge: string;
  nonce?: string;
  prompt: Array<"none" | "login" | "consent">;
  max_age?: number;
  /** RFC 9449 §10: the thumbprint of the DPoP key the code is bound to. */
  dpop_jkt?: string;
  /** OIDC Core §3.1.2.1: the user an `id_token_hint` names; another user's session does not count. */
  id_token_hint_sub?: string;
}

/** The request cannot be answered at the client: show an error page (HTTP 400), never redirect. */
export class UntrustedRedirect extends Error {
  constructor(readonly error: OAuthError) {
    super(error.description);
  }
}

/**
 * The request failed after client and redirect URI were established: redirect the error back (for a
 * self-registered client, only once a user is signed in: `errorForClient` in `flow.ts`).
 */
export class RedirectableError extends Error {
  constructor(
    readonly error: OAuthError,
    readonly client: Client,
    readonly redirect_uri: string,
    readonly state: string | undefined,
  ) {
    super(error.description);
  }
}

const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
/** RFC 9449 §10 `dpop_jkt`: a base64url SHA-256 JWK thumbprint (RFC 7638). */
const JKT = /^[A-Za-z0-9_-]{43}$/;

/**
 * The parameters of an authorization request, checked in the order RFC 9700 §4.1 requires: first the
 * redirect URI (failures are `UntrustedRedirect`: shown, never redirected — no open redirector), then
 * everything else (`RedirectableError`: back to the client's redirect URI with `state` and `iss`).
 *
 * The authorization endpoint and the pushed authorization request endpoint (RFC 9126 §2.1: the same
 * parameters, validated the same way) both call this; each decides how to answer the two error kinds.
 * The caller has found the client and settled where `request` and `request_uri` may appear.
 */
export async function validateAuthorizationParameters(env: Env, client: Client, params: Params): Promise<AuthorizationRequest> {
  const redirect_uri = resolveRedirectUri(client, params);
  const state = params.get("state");
  const fail = (error: OAuthError) => new RedirectableError(error, client, redirect_uri, state);

  if (params.has("request")) throw fail(new RequestNotSupported("request objects are not supported"));
  if (params.has("request_uri")) throw fail(new RequestUriNotSupported("request_uri is not supported"));
  const responseType = params.get("response_type");
  if (!responseType) throw fail(new InvalidRequest("response_type is required"));
  if (responseType !== "code") throw fail(new UnsupportedResponseType("only response_type=code is supported"));
  if (!client.grant_types.includes("authorization_code")) throw fail(new UnauthorizedClient("this client is not registered for the authorization code grant"));
  const responseMode = params.get("response_mode");
  if (responseMode !== undefined && responseMode !== "query") throw fail(new InvalidRequest("only response_mode=query is supported"));

  // OAuth 2.1 §4.1.1: PKCE is required, and "plain" is not allowed.
  const code_challenge = params.get("code_challenge");
  if (!code_challenge) throw fail(new InvalidRequest("code_challenge is required (PKCE with S256)"));
  if (params.get("code_challenge_method") !== "S256") throw fail(new InvalidRequest("code_challenge_method must be S256"));
  if (!CHALLENGE.test(code_challenge)) throw fail(new InvalidRequest("code_challenge must be a base64url SHA-256 value (43 characters)"));

  const prompt = parsePrompt(params.get("prompt"), fail);
  const maxAge = params.get("max_age");
  if (maxAge !== undefined && !/^\d{1,9}$/.test(maxAge)) throw fail(new InvalidRequest("max_age must be a non-negative integer"));
  // OIDC Core §3.1.2.1: max_age=0 is equivalent to prompt=login (the clock has whole seconds only).
  if (maxAge !== undefined && Number(maxAge) === 0 && !prompt.includes("none") && !prompt.includes("login")) prompt.push("login");

  const dpopJkt = params.get("dpop_jkt");
  if (dpopJkt !== undefined && !JKT.test(dpopJkt)) throw fail(new InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint (43 characters)"));

  const hint = params.get("id_token_hint");
  let hintSub: string | undefined;
  if (hint !== undefined) {
    try {
      hintSub = await idTokenHintSubject(env, config(env), client.client_id, hint, now());
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      throw fail(error);
    }
  }

  let decision: Awaited<ReturnType<typeof decide>>;
  try {
    decision = await decide(env, client, parseScope(params.get("scope")), parseResources(params.all("resource")));
  } catch (error) {
    // Anything else is no answer for the client: it becomes server_error (`app.ts`).
    if (!(error instanceof OAuthError)) throw error;
    throw fail(error);
  }
  return {
    client_id: client.client_id,
    redirect_uri,
    ...(state !== undefined ? { state } : {}),
    scope: decision.scope,
    resources: decision.resources.map((r) => r.resource),
    code_challenge,
    ...(params.has("nonce") ? { nonce: params.get("nonce") } : {}),
    prompt,
    ...(maxAge !== undefined ? { max_age: Number(maxAge) } : {}),
    ...(dpopJkt !== undefined ? { dpop_jkt: dpopJkt } : {}),
    ...(hintSub !== undefined ? { id_token_hint_sub: hintSub } : {}),
  };
}

/**
 * The redirect URI this request may be answered at: the one presented, if registered (exact match,
 * OAuth 2.1 §2.3.1), or the client's only one when none is presented, outside OpenID Connect. Throws
 * `UntrustedRedirect`.
 */
export function resolveRedirectUri(client: Client, params: Params): string {
  const presented = params.get("redirect_uri");
  // OIDC Core §3.1.2.1: redirect_uri is "REQUIRED" in an OpenID Connect request. Unconfirmed, the
  // registered one is no place to send the error to either.
  if (presented === undefined && params.get("scope")?.split(" ").includes("openid")) {
    throw new UntrustedRedirect(new InvalidRequest("redirect_uri is required in an OpenID Connect request (scope openid)"));
  }
  let redirect_uri: string | null;
  if (presented !== undefined) redirect_uri = matchRedirectUri(client.redirect_uris, presented);
  else redirect_uri = client.redirect_uris.length === 1 ? (client.redirect_uris[0] as string) : null;
  if (!redirect_uri) {
    throw new UntrustedRedirect(
      new InvalidRequest(presented === undefined ? "redirect_uri is required for this client" : "redirect_uri is not registered for this client"),
    );
  }
  return redirect_uri;
}

/** OIDC Core §3.1.2.1 `prompt`: space-separated; `none` must stand alone. */
function parsePrompt(value: string | undefined, fail: (e: OAuthError) => Error): AuthorizationRequest["prompt"] {
  if (value === undefined) return [];
  const values = new Set(value.split(" ").filter(Boolean));
  const out: AuthorizationRequest["prompt"] = [];
  for (const v of values) {
    if (v === "none" || v === "login" || v === "consent") out.push(v);
    // No account chooser: choosing an account means signing in again.
    else if (v === "select_account") out.push("login");
    else throw fail(new InvalidRequest(`prompt value ${v} is not supported`));
  }
  if (out.includes("none") && values.size > 1) throw fail(new InvalidRequest("prompt=none cannot be combined with other values"));
  return [...new Set(out)];
}
