import type { Context } from "hono";
import type { GRANT_TYPES } from "../../schemas/client";
import type { AppEnv } from "../types";

/** RFC 6749 §5.1 successful token response (plus OIDC `id_token`). */
export interface TokenResponse {
  access_token: string;
  /** RFC 9449 §5: `DPoP` when the access token is bound to the proof's key; draft-richer-oauth-httpsig §4: `httpsig` when bound to the request signature's key. */
  token_type: "Bearer" | "DPoP" | "httpsig";
  expires_in: number;
  scope?: string;
  refresh_token?: string;
  id_token?: string;
}

/** What a grant issued: the response, and whom and which audience the access token is for (the audit trail's). */
export interface Issued {
  response: TokenResponse;
  sub: string;
  aud: string;
  /** The access token's `jti`, and the grant it came from: the audit trail ties issuance, revocation and reuse together. */
  jti: string;
  grant_id?: string;
}

/**
 * A grant type handler. The token endpoint looks it up by `grant_type` and never names a grant;
 * the handler validates its own parameters, asks policy, calls at most the one Durable Object it
 * needs and mints tokens.
 */
export interface GrantHandler {
  /** RFC 6749 §4 `grant_type` value. */
  grant_type: (typeof GRANT_TYPES)[number];
  handle(c: Context<AppEnv>): Promise<Issued>;
}
