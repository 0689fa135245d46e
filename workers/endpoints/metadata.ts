import { Hono } from "hono";
import { AUTH_METHODS, CIBA_DELIVERY_MODES, GRANT_TYPES, ID_TOKEN_ALGS } from "../../schemas/client";
import type { Config } from "../config";
import { OIDC_SCOPES } from "../policy/scope";
import type { AppEnv } from "../types";

/**
 * RFC 8414 authorization server metadata, also served as OIDC Discovery 1.0. Built once per isolate
 * from configuration; served with Cache-Control so the edge can cache it.
 */
export function serverMetadata(cfg: Config) {
  const iss = cfg.ISSUER;
  return {
    issuer: iss,
    authorization_endpoint: `${iss}/authorize`,
    token_endpoint: `${iss}/token`,
    jwks_uri: `${iss}/jwks`,
    registration_endpoint: `${iss}/register`,
    userinfo_endpoint: `${iss}/userinfo`,
    introspection_endpoint: `${iss}/introspect`,
    revocation_endpoint: `${iss}/revoke`,
    scopes_supported: [...OIDC_SCOPES],
    response_types_supported: ["code"],
    response_modes_supported: ["query"],
    grant_types_supported: [...GRANT_TYPES],
    token_endpoint_auth_methods_supported: [...AUTH_METHODS],
    introspection_endpoint_auth_methods_supported: AUTH_METHODS.filter((m) => m !== "none"),
    revocation_endpoint_auth_methods_supported: [...AUTH_METHODS],
    // OAuth 2.1 §4.1.1: only S256; listing it is how clients learn PKCE is supported.
    code_challenge_methods_supported: ["S256"],
    // RFC 9207 §3: `iss` is in every authorization response.
    authorization_response_iss_parameter_supported: true,
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: [...ID_TOKEN_ALGS],
    claims_supported: ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash", "name", "email", "email_verified"],
    prompt_values_supported: ["none", "login", "consent"],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    resource_indicators_supported: true,
    ui_locales_supported: ["en"],
    // OpenID CIBA Core 1.0 §4; README "CIBA" says what is not supported.
    backchannel_authentication_endpoint: `${iss}/bc-authorize`,
    backchannel_token_delivery_modes_supported: [...CIBA_DELIVERY_MODES],
    backchannel_user_code_parameter_supported: false,
    // RFC 8628 §4.
    device_authorization_endpoint: `${iss}/device_authorization`,
  };
}

let cached: { issuer: string; body: string } | undefined;

export const metadata = new Hono<AppEnv>();

// RFC 8414 §3 and OIDC Discovery §4: the issuer has no path, so both documents sit at the root.
metadata.get("/.well-known/oauth-authorization-server", serve);
metadata.get("/.well-known/openid-configuration", serve);

function serve(c: import("hono").Context<AppEnv>) {
  const cfg = c.var.cfg;
  if (cached?.issuer !== cfg.ISSUER) cached = { issuer: cfg.ISSUER, body: JSON.stringify(serverMetadata(cfg)) };
  return c.body(cached.body, 200, { "Content-Type": "application/json", "Cache-Control": "public, max-age=300" });
}
