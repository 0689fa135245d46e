import { importJWK, type JWK } from "jose";
import * as v from "valibot";
import type { AttestationPolicy } from "./attestation";

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
/**
 * RFC 7591 §2 `token_endpoint_auth_method` values Latchkey accepts (`private_key_jwt`: OIDC Core §9, RFC 7523 §2.2;
 * `attest_jwt_client_auth` and `attest_jwt_client_auth_dpop`: draft-ietf-oauth-attestation-based-client-auth-11 §13.4).
 * `httpsig_client_auth` is Latchkey's name for authentication by an RFC 9421 HTTP message signature made
 * with a key from the client's `jwks`/`jwks_uri` (draft-richer-oauth-httpsig-03, which registers no
 * method name; named after RFC 8705's `tls_client_auth`). See `workers/clients/httpsig-auth.ts`.
 */
export const AUTH_METHODS = [
  "none",
  "client_secret_basic",
  "client_secret_post",
  "private_key_jwt",
  "attest_jwt_client_auth",
  "attest_jwt_client_auth_dpop",
  "httpsig_client_auth",
] as const;
/** The two attestation-based methods: PoP JWT, and DPoP combined mode. */
export const ATTESTATION_AUTH_METHODS = ["attest_jwt_client_auth", "attest_jwt_client_auth_dpop"] as const;
/**
 * JWS algorithms (RFC 7518) accepted for client assertions: asymmetric only. Never `none`, and never
 * HMAC, which would make a public key in `jwks` a shared secret.
 */
export const ASSERTION_ALGS = ["ES256", "ES384", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA", "Ed25519"] as const;
/** Algorithms for ID tokens (OIDC Registration `id_token_signed_response_alg`). */
export const ID_TOKEN_ALGS = ["RS256", "ES256"] as const;

const httpsUrl = v.pipe(v.string(), v.url("must be an absolute URL"), v.maxLength(2000));
/** Shown to users as it is: no control characters, and no bidirectional overrides that would reorder what they read. */
const text = v.pipe(
  v.string(),
  v.maxLength(200),
  // Shown to users as it is: nothing that reorders it (bidirectional overrides and marks), hides in it (zero-width
  // and other format characters, \p{Cf}) or breaks it (controls, line and paragraph separators). The zero-width
  // joiner and non-joiner stay: emoji sequences and several scripts (Persian, Indic) need them.
  v.check((t) => !/(?![\u200C\u200D])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(t), "must not contain control, format or bidirectional characters"),
);

/** JWK members that carry private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** An RFC 7517 public key; jose checks the key material itself when it imports it. */
export const PublicJwkSchema = v.pipe(
  // Other members (n, e, crv, x, y, key_ops, x5c, ext…) are JSON scalars or string lists; typing them so
  // keeps a client record serialisable across Durable Object RPC.
  v.objectWithRest(
    {
      kty: v.picklist(["RSA", "EC", "OKP"], "must be an RSA, EC or OKP public key (no symmetric keys)"),
      kid: v.optional(v.pipe(v.string(), v.maxLength(200))),
      alg: v.optional(v.pipe(v.string(), v.maxLength(20))),
      use: v.optional(v.literal("sig", 'must be "sig" if present')),
    },
    v.union([v.string(), v.number(), v.boolean(), v.array(v.string())], "JWK members must be strings, numbers, booleans or string lists"),
  ),
  v.check((k) => PRIVATE_JWK_MEMBERS.every((m) => !(m in k)), "must not contain private key material"),
  // RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used" (a 2048-bit modulus is 342 base64url characters).
  v.check((k) => k.kty !== "RSA" || (typeof k.n === "string" && k.n.length >= 342), "an RSA key must be at least 2048 bits"),
);

/** RFC 7517 §5 JWK Set of public signing keys. */
export const JwksSchema = v.object({ keys: v.pipe(v.array(PublicJwkSchema), v.minLength(1, "must contain a key"), v.maxLength(10)) });
export type Jwks = v.InferOutput<typeof JwksSchema>;

/** The algorithm a key without `alg` is imported for: the one its kty and crv imply (RFC 7518 §3.1, RFC 8037 §3.1). */
const IMPLIED_ALG: Record<string, string> = { RSA: "RS256", "EC P-256": "ES256", "EC P-384": "ES384", "EC P-521": "ES512", "OKP Ed25519": "Ed25519" };

/**
 * The first key of a JWK Set (already valid for `JwksSchema`) that jose cannot import for its `alg`, or
 * for the algorithm its kty and crv imply; null when every key imports. Importing checks the key material
 * (base64url, lengths, a point on its curve) that the synchronous schema cannot, so an unusable key is
 * refused when it is registered rather than failing every assertion made with it later.
 */
export async function unusableJwk(jwks: Jwks | undefined): Promise<{ description: string; detail: string } | null> {
  for (const [i, key] of (jwks?.keys ?? []).entries()) {
    const alg = key.alg ?? IMPLIED_ALG[key.kty === "RSA" ? "RSA" : `${key.kty} ${key.crv}`];
    if (!alg) return { description: `jwks.keys.${i}: has no alg, and its kty and crv imply no signing algorithm`, detail: `crv ${key.crv}` };
    try {
      await importJWK(key as JWK, alg);
    } catch (error) {
      return { description: `jwks.keys.${i}: is not a usable ${alg} public key`, detail: String(error) };
    }
  }
  return null;
}

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
  /** OpenID RP-Initiated Logout 1.0 §3.1: where the browser may return after a logout, compared by exact string. */
  post_logout_redirect_uris: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(2000))), v.maxLength(20))),
  software_id: v.optional(text),
  software_version: v.optional(text),
  /** OIDC Registration §2: `web` (default) or `native`. */
  application_type: v.optional(v.picklist(["web", "native"]), "web"),
  /** OIDC Registration §2; RS256 unless the client asks for ES256. */
  id_token_signed_response_alg: v.optional(v.picklist(ID_TOKEN_ALGS), "RS256"),
  /** RFC 7591 §2: the client's public keys, by value (excludes `jwks_uri`). */
  jwks: v.optional(JwksSchema),
  /** RFC 7591 §2: where the client publishes its public keys (fetched under the outbound-fetch rules). */
  jwks_uri: v.optional(httpsUrl),
  /** OIDC Registration §2: the one JWS algorithm the client's assertions must use. */
  token_endpoint_auth_signing_alg: v.optional(v.picklist(ASSERTION_ALGS, "must be an asymmetric JWS algorithm Latchkey supports")),
  /** RFC 9126 §6: the client may start an authorization request only by pushing it. Default false. */
  require_pushed_authorization_requests: v.optional(v.boolean(), false),
  /** RFC 9449 §5.2: the client always uses DPoP, so token requests without a DPoP proof are refused. Absent means false. */
  dpop_bound_access_tokens: v.optional(v.boolean()),
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
  /** base64url SHA-256 of the RFC 7592 registration access token (dynamically registered clients only). */
  registration_access_token_hash?: string;
  /**
   * How the client came to exist: the admin API, RFC 7591 registration, or — for the one static
   * `client_id` of pushed client registration — a request that carried its own unverified metadata;
   * `client_id_metadata_document`: nobody registered it, its client_id is a URL and this record is its
   * validated, cached metadata document (draft-ietf-oauth-client-id-metadata-document).
   */
  registered_by: "admin" | "dynamic_registration" | "pushed_registration" | "client_id_metadata_document";
  /** Attestation policy an administrator set for this client (`PUT /admin/policies/clients/{id}`). */
  attestation_policy?: AttestationPolicy;
}

/** The public view of a client: what RFC 7591 responses and admin reads return (no hashes). */
export function clientInformation(client: Client): Omit<Client, "client_secret_hash" | "registration_access_token_hash" | "registered_by"> {
  const { client_secret_hash: _hash, registration_access_token_hash: _rat, registered_by: _by, ...info } = client;
  return info;
}

/**
 * draft-richer-oauth-pushed-client-registration §4: the `client_id` every unregistered client uses.
 * "An AS MUST NOT assign the value urn:ietf:oauth:parameters:dynamic to any single client registration."
 */
export const DYNAMIC_CLIENT_ID = "urn:ietf:oauth:parameters:dynamic";

/**
 * draft-richer-oauth-pushed-client-registration §3.1 `client_registration`: RFC 7591 metadata an
 * unregistered client pushes along with its authorization request. Nobody verified any of it, so it
 * is display data only; unknown members are ignored, as at `/register`.
 */
export const PushedRegistrationSchema = v.object({
  client_name: v.optional(text),
  client_uri: v.optional(httpsUrl),
  logo_uri: v.optional(httpsUrl),
  tos_uri: v.optional(httpsUrl),
  policy_uri: v.optional(httpsUrl),
  software_id: v.optional(text),
  software_version: v.optional(text),
  /** If given, the pushed `redirect_uri` must be one of them. */
  redirect_uris: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(2000))), v.maxLength(20))),
  /** An unregistered client has nothing to authenticate with. */
  token_endpoint_auth_method: v.optional(v.picklist(["none"], "an unregistered client is a public client (none)")),
});

/**
 * What of a pushed registration is kept, with the interaction through the pages: the name, the one
 * member the consent page shows (quoted, as self-asserted). The rest is checked for shape, then dropped:
 * an unverified logo or URL shown to the user would only lend the client credibility.
 */
export type PushedRegistration = Pick<v.InferOutput<typeof PushedRegistrationSchema>, "client_name">;
