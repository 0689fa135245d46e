import * as v from "valibot";

/** Grant types a client may register (RFC 7591 §2 `grant_types`). */
export const GRANT_TYPES = [
  "authorization_code",
  "refresh_token",
  "client_credentials",
  // OpenID CIBA Core 1.0 §4.
  "urn:openid:params:grant-type:ciba",
  // RFC 8628 §3.4.
  "urn:ietf:params:oauth:grant-type:device_code",
] as const;
/** OpenID CIBA Core 1.0 §4 `backchannel_token_delivery_mode` values (all three are supported). */
export const CIBA_DELIVERY_MODES = ["poll", "ping", "push"] as const;
/** RFC 7591 §2 `token_endpoint_auth_method` values Latchkey accepts. */
export const AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"] as const;
/** Algorithms for ID tokens (OIDC Registration `id_token_signed_response_alg`). */
export const ID_TOKEN_ALGS = ["RS256", "ES256"] as const;

const httpsUrl = v.pipe(v.string(), v.url("must be an absolute URL"), v.maxLength(2000));
const text = v.pipe(v.string(), v.maxLength(200));

/**
 * RFC 7591 §2 client metadata as accepted at `/register` and `POST /admin/clients`. Unknown members are
 * ignored (RFC 7591 §3.2.1 lets the server drop what it does not understand). Redirect-URI and
 * cross-field rules are in `workers/clients/metadata.ts`.
 */
export const ClientMetadataSchema = v.object({
  /** RFC 7591 §2: redirection URIs, compared by exact string (OAuth 2.1 §2.3.1). */
  redirect_uris: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(2000))), v.maxLength(20)), []),
  /** RFC 7591 §2; the RFC default is `client_secret_basic`. */
  token_endpoint_auth_method: v.optional(v.picklist(AUTH_METHODS), "client_secret_basic"),
  /** RFC 7591 §2; default `["authorization_code"]`. */
  grant_types: v.optional(v.pipe(v.array(v.picklist(GRANT_TYPES)), v.minLength(1)), ["authorization_code"]),
  /** RFC 7591 §2; only `code` is supported (OAuth 2.1 removes the implicit grant). Default: `["code"]` with the authorization_code grant, else none. */
  response_types: v.optional(v.array(v.picklist(["code"], "only the code response type is supported"))),
  /** RFC 7591 §2: shown on the consent page. */
  client_name: v.optional(text),
  client_uri: v.optional(httpsUrl),
  logo_uri: v.optional(httpsUrl),
  tos_uri: v.optional(httpsUrl),
  policy_uri: v.optional(httpsUrl),
  /** RFC 7591 §2: space-separated scopes the client may request. */
  scope: v.optional(
    v.pipe(v.string(), v.maxLength(1000), v.regex(/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/, "must be space-separated scope tokens")),
  ),
  contacts: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(200))), v.maxLength(10))),
  software_id: v.optional(text),
  software_version: v.optional(text),
  /** OIDC Registration §2: `web` (default) or `native`. */
  application_type: v.optional(v.picklist(["web", "native"]), "web"),
  /** OIDC Registration §2; RS256 unless the client asks for ES256. */
  id_token_signed_response_alg: v.optional(v.picklist(ID_TOKEN_ALGS), "RS256"),
  /** CIBA Core §4: how the client gets its tokens; required with the CIBA grant. */
  backchannel_token_delivery_mode: v.optional(v.picklist(CIBA_DELIVERY_MODES)),
  /** CIBA Core §4: where ping and push callbacks go (https; http loopback only in dev). */
  backchannel_client_notification_endpoint: v.optional(v.pipe(v.string(), v.url("must be an absolute URL"), v.maxLength(2000))),
  /** CIBA Core §4: signed authentication requests are not supported, so only its absence is accepted. */
  backchannel_authentication_request_signing_alg: v.optional(v.never("signed authentication requests are not supported")),
  /** CIBA Core §4: `user_code` is not supported (README "CIBA"), so only false is accepted. */
  backchannel_user_code_parameter: v.optional(v.literal(false, "user_code is not supported by this server")),
});

export type ClientMetadataInput = v.InferInput<typeof ClientMetadataSchema>;
export type ClientMetadata = Omit<v.InferOutput<typeof ClientMetadataSchema>, "response_types"> & { response_types: "code"[] };

/** A client as the registry stores it: validated metadata plus what the server assigned. */
export interface Client extends ClientMetadata {
  /** RFC 7591 §3.2.1. */
  client_id: string;
  /** RFC 7591 §3.2.1: seconds since the epoch. */
  client_id_issued_at: number;
  /** base64url SHA-256 of the secret; the secret itself is never stored. */
  client_secret_hash?: string;
  /** RFC 7591 §3.2.1: 0 means the secret never expires. */
  client_secret_expires_at?: number;
  /** How the client came to exist. */
  registered_by: "admin" | "dynamic_registration";
}

/** The public view of a client: what RFC 7591 responses and admin reads return (no secret hash). */
export function clientInformation(client: Client): Omit<Client, "client_secret_hash" | "registered_by"> {
  const { client_secret_hash: _hash, registered_by: _by, ...info } = client;
  return info;
}
