/**
 * The closed set of OAuth errors Latchkey sends. One class per wire `error` code, each with its HTTP
 * status. `description` goes on the wire as `error_description`; `detail` is internal and only logged.
 * Anything thrown that is not an OAuthError becomes `server_error` (see `app.ts`).
 */
export abstract class OAuthError extends Error {
  /** RFC 6749 §5.2 `error`. */
  abstract readonly error: string;
  /** HTTP status of a direct (non-redirect) response. */
  abstract readonly status: 400 | 401 | 403 | 404 | 405 | 413 | 429 | 500 | 503;
  /** Extra response headers (WWW-Authenticate, DPoP-Nonce, Retry-After). */
  headers: Record<string, string> = {};

  /** Human-readable `error_description`, wire-safe (`wireSafe`). */
  readonly description: string;

  constructor(
    description: string,
    /** Internal detail for logs; never sent. */
    readonly detail?: string,
  ) {
    const safe = wireSafe(description);
    super(safe);
    this.description = safe;
  }

  override get name(): string {
    return `OAuthError(${this.error})`;
  }

  /** The JSON body: `{ error, error_description }`. */
  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

/**
 * RFC 6749 §4.1.2.1 and §5.2: `error_description` "MUST NOT include characters outside the set %x20-21 /
 * %x23-5B / %x5D-7E". Our own text is written out (`§` as `section `, `…` as `...`); what a request's values
 * bring in is replaced: `"` by `'`, `\` by `/`, anything else outside the set by `?`.
 */
export function wireSafe(description: string): string {
  return description
    .replaceAll("§", "section ")
    .replaceAll("…", "...")
    .replace(/[^\x20-\x7E]/g, "?")
    .replaceAll('"', "'")
    .replaceAll("\\", "/");
}

type Status = OAuthError["status"];

/** Defines the class for one wire error code. */
function code<E extends string, S extends Status>(error: E, status: S) {
  return class extends OAuthError {
    readonly error = error;
    readonly status = status;
  };
}

// RFC 6749 §4.1.2.1 and §5.2 (as carried into OAuth 2.1).
export class InvalidRequest extends code("invalid_request", 400) {}
export class UnauthorizedClient extends code("unauthorized_client", 400) {}
export class AccessDenied extends code("access_denied", 400) {}
export class UnsupportedResponseType extends code("unsupported_response_type", 400) {}
export class InvalidScope extends code("invalid_scope", 400) {}
export class InvalidGrant extends code("invalid_grant", 400) {}
export class UnsupportedGrantType extends code("unsupported_grant_type", 400) {}
export class ServerError extends code("server_error", 500) {}
export class TemporarilyUnavailable extends code("temporarily_unavailable", 503) {}
/** `temporarily_unavailable` with 429 and Retry-After: this caller, not the server, should slow down. */
export class RateLimited extends code("temporarily_unavailable", 429) {}
/** RFC 6749 §5.2: 401 when the client tried to authenticate; carries a WWW-Authenticate challenge. */
export class InvalidClient extends code("invalid_client", 401) {}
// RFC 8707 §2.
export class InvalidTarget extends code("invalid_target", 400) {}
// RFC 6750 §3.1 (resource endpoints: userinfo, admin).
export class InvalidToken extends code("invalid_token", 401) {}
export class InsufficientScope extends code("insufficient_scope", 403) {}
// RFC 7591 §3.2.2.
export class InvalidRedirectUri extends code("invalid_redirect_uri", 400) {}
export class InvalidClientMetadata extends code("invalid_client_metadata", 400) {}
export class InvalidSoftwareStatement extends code("invalid_software_statement", 400) {}
// RFC 9449 §5 and §8: a DPoP proof at the token endpoint (400, JSON body; `use_dpop_nonce` with a DPoP-Nonce header).
export class InvalidDpopProof extends code("invalid_dpop_proof", 400) {}
export class UseDpopNonce extends code("use_dpop_nonce", 400) {}
// RFC 9449 §7.1 and §9: the same codes at a protected resource (userinfo) are 401 with a `DPoP` challenge.
export class InvalidDpopProofAtResource extends code("invalid_dpop_proof", 401) {}
export class UseDpopNonceAtResource extends code("use_dpop_nonce", 401) {}
// OpenID CIBA Core 1.0 §13 (backchannel authentication endpoint) and §11 / RFC 8628 §3.5 (token endpoint).
export class ExpiredLoginHintToken extends code("expired_login_hint_token", 400) {}
export class UnknownUserId extends code("unknown_user_id", 400) {}
export class MissingUserCode extends code("missing_user_code", 400) {}
export class InvalidUserCode extends code("invalid_user_code", 400) {}
export class InvalidBindingMessage extends code("invalid_binding_message", 400) {}
export class AuthorizationPending extends code("authorization_pending", 400) {}
export class SlowDown extends code("slow_down", 400) {}
export class ExpiredToken extends code("expired_token", 400) {}
// draft-ietf-oauth-attestation-based-client-auth-11 §7: a PoP without a recent server challenge
// (with an `OAuth-Client-Attestation-Challenge` header), an attestation too old, one that does not verify.
export class UseAttestationChallenge extends code("use_attestation_challenge", 400) {}
export class UseFreshAttestation extends code("use_fresh_attestation", 400) {}
/** Used in place of `invalid_client` (401) when the attestation or its proof of possession fails. */
export class InvalidClientAttestation extends code("invalid_client_attestation", 401) {}
// OIDC Core §3.1.2.6.
export class LoginRequired extends code("login_required", 400) {}
export class ConsentRequired extends code("consent_required", 400) {}
export class InteractionRequired extends code("interaction_required", 400) {}
export class RequestNotSupported extends code("request_not_supported", 400) {}
export class RequestUriNotSupported extends code("request_uri_not_supported", 400) {}
// RFC 9101 §7 (as used for RFC 9126 request_uri values): unknown, expired, used or not this client's.
export class InvalidRequestUri extends code("invalid_request_uri", 400) {}
export class RegistrationNotSupported extends code("registration_not_supported", 400) {}
/** `access_denied` as a direct 403 (a refused registration or admin action), not a redirect. */
export class Forbidden extends code("access_denied", 403) {}
// Not an RFC error code; used for unknown routes and methods.
export class NotFound extends code("not_found", 404) {}
export class MethodNotAllowed extends code("method_not_allowed", 405) {}
export class RequestTooLarge extends code("invalid_request", 413) {}

/** Exhaustiveness guard for result unions: a new `reason` fails type checking until it is mapped. */
export function unreachable(value: never): never {
  throw new Error(`unmapped result: ${JSON.stringify(value)}`);
}
