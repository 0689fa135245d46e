import { Hono } from "hono";
import { ASSERTION_ALGS, AUTH_METHODS, CIBA_DELIVERY_MODES, GRANT_TYPES, ID_TOKEN_ALGS } from "../../schemas/client";
import { ATTESTATION_ALGS } from "../attestation/verify";
import type { Config } from "../config";
import { DPOP_ALGS } from "../dpop/proof";
import { methodNotAllowed } from "../middleware/method";
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
    pushed_authorization_request_endpoint: `${iss}/par`,
    token_endpoint: `${iss}/token`,
    jwks_uri: `${iss}/jwks`,
    // RFC 8414 §2 names the RFC 7591 endpoint; with registration closed there is none to name, so MCP clients
    // turn to a client ID metadata document or a pre-registered client instead of a certain 403.
    ...(cfg.REGISTRATION_POLICY === "closed" ? {} : { registration_endpoint: `${iss}/register` }),
    userinfo_endpoint: `${iss}/userinfo`,
    // OpenID RP-Initiated Logout 1.0 §2.1.
    end_session_endpoint: `${iss}/logout`,
    introspection_endpoint: `${iss}/introspect`,
    revocation_endpoint: `${iss}/revoke`,
    scopes_supported: [...OIDC_SCOPES],
    response_types_supported: ["code"],
    response_modes_supported: ["query"],
    grant_types_supported: [...GRANT_TYPES],
    token_endpoint_auth_methods_supported: [...AUTH_METHODS],
    introspection_endpoint_auth_methods_supported: AUTH_METHODS.filter((m) => m !== "none"),
    revocation_endpoint_auth_methods_supported: [...AUTH_METHODS],
    // RFC 8414 §2: the algorithms private_key_jwt assertions may use at each authenticated endpoint.
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
    introspection_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
    revocation_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGS],
    // OAuth 2.1 §4.1.1: only S256; listing it is how clients learn PKCE is supported.
    code_challenge_methods_supported: ["S256"],
    // RFC 9207 §3: `iss` is in every authorization response.
    authorization_response_iss_parameter_supported: true,
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: [...ID_TOKEN_ALGS],
    claims_supported: ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash", "name", "email"],
    prompt_values_supported: ["none", "login", "consent"],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    // Request objects by reference (RFC 9101) are not fetched; request_uri values from /par always work (RFC 9126 §4).
    request_uri_parameter_supported: false,
    resource_indicators_supported: true,
    // draft-ietf-oauth-client-id-metadata-document: a URL may be the client_id.
    client_id_metadata_document_supported: true,
    // RFC 9126 §5.
    require_pushed_authorization_requests: cfg.REQUIRE_PUSHED_AUTHORIZATION_REQUESTS,
    // draft-richer-oauth-pushed-client-registration §5: "MUST indicate its support".
    pushed_client_registration_supported: cfg.PUSHED_CLIENT_REGISTRATION,
    // RFC 9449 §5.1: DPoP is supported, with these proof algorithms.
    dpop_signing_alg_values_supported: [...DPOP_ALGS],
    // draft-ietf-oauth-attestation-based-client-auth-11 §10.1: where challenges come from, the algorithms
    // accepted for attestations and their PoPs ("MUST" be published when the PoP JWT mode is used), and the
    // PoP methods: `none` too, since attestation is one client authentication method among others here.
    challenge_endpoint: `${iss}/challenge`,
    client_attestation_signing_alg_values_supported: [...ATTESTATION_ALGS],
    client_attestation_pop_signing_alg_values_supported: [...ATTESTATION_ALGS],
    client_attestation_pop_methods_supported: ["attestation_pop_jwt", "dpop_combined", "none"],
    ui_locales_supported: ["en"],
    // OpenID CIBA Core 1.0 §4; README "CIBA" says what is not supported.
    backchannel_authentication_endpoint: `${iss}/bc-authorize`,
    backchannel_token_delivery_modes_supported: [...CIBA_DELIVERY_MODES],
    backchannel_user_code_parameter_supported: false,
    // RFC 8628 §4.
    device_authorization_endpoint: `${iss}/device_authorization`,
  };
}

let cached: { cfg: Config; body: string } | undefined;

export const metadata = new Hono<AppEnv>();

// RFC 8414 §3 and OIDC Discovery §4: the issuer has no path, so both documents sit at the root.
metadata.get("/.well-known/oauth-authorization-server", serve);
metadata.get("/.well-known/openid-configuration", serve);
for (const path of ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]) metadata.all(path, methodNotAllowed("GET"));

function serve(c: import("hono").Context<AppEnv>) {
  const cfg = c.get("cfg");
  if (cached?.cfg !== cfg) cached = { cfg, body: JSON.stringify(serverMetadata(cfg)) };
  return c.body(cached.body, 200, { "Content-Type": "application/json", "Cache-Control": "public, max-age=300" });
}
