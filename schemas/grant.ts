/** What a user (or policy) authorized: the facts every token minted from a grant is derived from. */
export interface GrantData {
  /** The client the grant belongs to (RFC 9068 `client_id`). */
  client_id: string;
  /** The user (OIDC `sub`). */
  sub: string;
  /** Granted scopes (RFC 6749 §3.3). */
  scope: string[];
  /** RFC 8707 resources the grant covers; empty means the authorization server itself (userinfo). */
  resources: string[];
  /**
   * Set once a step-up extended the grant: the scopes approved for each resource. A token for a resource
   * then carries only those (of `scope`), since the user approved each addition for the resources it named
   * only. Absent, every granted scope a resource supports applies to it, as consented at once.
   */
  resource_scopes?: Record<string, string[]>;
  /** OIDC Core §2 `auth_time`: when the user last authenticated (seconds since the epoch). */
  auth_time: number;
  /** RFC 8176 authentication methods (`pwd`). */
  amr: string[];
  /** OIDC `nonce` from the authorization request, echoed into the ID token. */
  nonce?: string;
  /** Whether refresh tokens are issued (client registered for refresh_token). */
  refresh: boolean;
}

/** What binds an authorization code (OAuth 2.1 §4.1.3). */
export interface CodeBinding {
  /** base64url SHA-256 of the code's secret part. */
  hash: string;
  expires_at: number;
  /** PKCE S256 challenge (RFC 7636 §4.2). */
  code_challenge: string;
  /** The redirect URI used in the authorization request. */
  redirect_uri: string;
  /** RFC 9449 §10 `dpop_jkt`: the token request's DPoP proof must be signed by the key with this thumbprint. */
  dpop_jkt?: string;
}

/** Lifetimes fixed when the grant is created, so a later config change never shortens a live grant mid-flight. */
export interface GrantLifetimes {
  /** Absolute end of the refresh-token family. */
  expires_at: number;
  /** A refresh token unused this many seconds expires. */
  idle_ttl: number;
  /** Seconds during which a rotated refresh token may be retried for the same successor. */
  reuse_window: number;
}
