import * as v from "valibot";
import { type ClientMetadata, ClientMetadataSchema, unusableJwk } from "../../schemas/client";
import type { Config } from "../config";
import { InvalidClientMetadata, InvalidRedirectUri, InvalidSoftwareStatement } from "../errors";
import { redirectUriProblem } from "./redirect-uri";
import { notificationUrlProblem, type OutboundPolicy, outboundPolicy, outboundUrlProblem } from "./safe-fetch";

/** Largest RFC 7591 metadata document accepted (metadata is small; this bounds abuse). */
export const MAX_REGISTRATION_BYTES = 16 * 1024;

/**
 * An RFC 7591 metadata document as text (a registration request, or a pushed `client_registration`),
 * parsed into its JSON object. `name` says which in the `invalid_client_metadata` it throws.
 */
export function parseMetadataJson(text: string, name: string): Record<string, unknown> {
  if (text.length > MAX_REGISTRATION_BYTES) throw new InvalidClientMetadata(`${name} is too large`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InvalidClientMetadata(`${name} is not valid JSON`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new InvalidClientMetadata(`${name} must be a JSON object`);
  return json as Record<string, unknown>;
}

/**
 * `validateClientMetadata` for a registration and its RFC 7592 updates, then every `jwks` key imported
 * (`unusableJwk`): a key that cannot verify anything is `invalid_client_metadata` now, not a failed assertion later.
 */
export async function validateRegistration(input: unknown, cfg: Config): Promise<ClientMetadata> {
  const metadata = validateClientMetadata(input, outboundPolicy(cfg), registrationOptions(cfg));
  const unusable = await unusableJwk(metadata.jwks);
  if (unusable) throw new InvalidClientMetadata(unusable.description, unusable.detail);
  return metadata;
}

/**
 * Validates RFC 7591 client metadata: the schema, then the rules that span fields. Throws
 * `invalid_redirect_uri`, `invalid_client_metadata` or `invalid_software_statement` (RFC 7591 §3.2.2)
 * naming the first problem. `policy` decides which `jwks_uri` may ever be fetched.
 */
export function validateClientMetadata(input: unknown, policy: OutboundPolicy, opts: { allowHttpLoopbackNotificationEndpoint?: boolean } = {}): ClientMetadata {
  // RFC 7591 §2.3: a software statement's claims would override the plain values. Latchkey trusts no
  // statement issuer, so it refuses one rather than register metadata the client expected overridden.
  if (typeof input === "object" && input !== null && "software_statement" in input) {
    throw new InvalidSoftwareStatement("software statements are not supported by this server");
  }
  const parsed = v.safeParse(ClientMetadataSchema, input);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const path = v.getDotPath(issue);
    if (path?.startsWith("redirect_uris")) throw new InvalidRedirectUri(`redirect_uris: ${issue.message}`);
    throw new InvalidClientMetadata(`${path ?? "body"}: ${issue.message}`);
  }
  const grants = new Set(parsed.output.grant_types);
  const m = { ...parsed.output, response_types: parsed.output.response_types ?? (grants.has("authorization_code") ? ["code" as const] : []) };
  for (const uri of m.redirect_uris) {
    const problem = redirectUriProblem(uri);
    if (problem) throw new InvalidRedirectUri(`redirect_uri '${uri}' ${problem}`);
  }
  // RP-Initiated Logout §3.1: the same rules as redirect URIs (state is appended to them as well).
  for (const uri of m.post_logout_redirect_uris ?? []) {
    const problem = redirectUriProblem(uri);
    if (problem) throw new InvalidClientMetadata(`post_logout_redirect_uri '${uri}' ${problem}`);
  }
  // RFC 7591 §2.1: grant_types and response_types must be consistent.
  if (grants.has("authorization_code") !== m.response_types.includes("code")) {
    throw new InvalidClientMetadata("grant_types authorization_code and response_types code go together");
  }
  if (grants.has("authorization_code") && m.redirect_uris.length === 0) {
    throw new InvalidRedirectUri("redirect_uris is required for the authorization_code grant");
  }
  if (grants.has("refresh_token") && !USER_GRANTS.some((g) => grants.has(g))) {
    throw new InvalidClientMetadata("refresh_token is only issued with the authorization_code, CIBA or device_code grant");
  }
  backchannelProblem(m, grants, policy, opts.allowHttpLoopbackNotificationEndpoint ?? false);
  // OAuth 2.1 §4.2: "The client credentials grant type MUST only be used by confidential clients."
  if (grants.has("client_credentials") && m.token_endpoint_auth_method === "none") {
    throw new InvalidClientMetadata("client_credentials requires a confidential client (not token_endpoint_auth_method none)");
  }
  checkKeys(m, policy);
  return { ...m, grant_types: [...grants], response_types: [...new Set(m.response_types)] };
}

/** The rules for `jwks`, `jwks_uri` and `token_endpoint_auth_signing_alg`. */
function checkKeys(m: Omit<ClientMetadata, "response_types">, policy: OutboundPolicy): void {
  // RFC 7591 §2: "The jwks_uri and jwks parameters MUST NOT both be present in the same request or response."
  if (m.jwks && m.jwks_uri) throw new InvalidClientMetadata("jwks and jwks_uri must not both be present");
  if (m.jwks_uri) {
    const problem = outboundUrlProblem(m.jwks_uri, policy);
    if (problem) throw new InvalidClientMetadata(`jwks_uri ${problem}`);
  }
  if (m.token_endpoint_auth_method === "private_key_jwt" && !m.jwks && !m.jwks_uri) {
    throw new InvalidClientMetadata("token_endpoint_auth_method: private_key_jwt needs the client's public keys in jwks or jwks_uri");
  }
  if (m.token_endpoint_auth_method === "httpsig_client_auth" && !m.jwks && !m.jwks_uri) {
    throw new InvalidClientMetadata("token_endpoint_auth_method: httpsig_client_auth needs the client's public keys in jwks or jwks_uri");
  }
  if (m.token_endpoint_auth_signing_alg && m.token_endpoint_auth_method !== "private_key_jwt") {
    throw new InvalidClientMetadata("token_endpoint_auth_signing_alg applies only to token_endpoint_auth_method private_key_jwt");
  }
}

/** Grants through which a user authorizes a client (and which may therefore come with refresh tokens). */
const USER_GRANTS = ["authorization_code", "urn:openid:params:grant-type:ciba", "urn:ietf:params:oauth:grant-type:device_code"] as const;

/** CIBA Core §4 client metadata rules; throws `invalid_client_metadata`. */
function backchannelProblem(m: ClientMetadata, grants: Set<string>, policy: OutboundPolicy, allowHttpLoopback: boolean): void {
  const mode = m.backchannel_token_delivery_mode;
  if (!grants.has("urn:openid:params:grant-type:ciba")) {
    if (mode || m.backchannel_client_notification_endpoint) throw new InvalidClientMetadata("backchannel_* metadata needs the CIBA grant type");
    return;
  }
  // CIBA Core §4: "backchannel_token_delivery_mode: REQUIRED."
  if (!mode) throw new InvalidClientMetadata("backchannel_token_delivery_mode is required with the CIBA grant");
  // CIBA Core §7.1: the client MUST authenticate at the backchannel authentication endpoint.
  if (m.token_endpoint_auth_method === "none") throw new InvalidClientMetadata("the CIBA grant requires a confidential client");
  const endpoint = m.backchannel_client_notification_endpoint;
  if (mode === "poll") {
    if (endpoint) throw new InvalidClientMetadata("backchannel_client_notification_endpoint is only used in ping and push modes");
    return;
  }
  // CIBA Core §4: "REQUIRED if the token delivery mode is set to ping or push. This URL MUST use the https scheme."
  if (!endpoint) throw new InvalidClientMetadata(`backchannel_client_notification_endpoint is required in ${mode} mode`);
  // Latchkey POSTs to it: the rules of every URL it fetches for a client (no special-use addresses, no local names).
  const problem = notificationUrlProblem(endpoint, policy, allowHttpLoopback);
  if (problem) throw new InvalidClientMetadata(`backchannel_client_notification_endpoint ${problem}`);
}

/** Registration rules that depend on the environment: dev accepts loopback http notification endpoints. */
export function registrationOptions(cfg: Config): { allowHttpLoopbackNotificationEndpoint: boolean } {
  return { allowHttpLoopbackNotificationEndpoint: cfg.ENVIRONMENT === "dev" };
}

/** Whether a client authenticates with a shared secret. */
export function usesSecret(m: Pick<ClientMetadata, "token_endpoint_auth_method">): boolean {
  return m.token_endpoint_auth_method === "client_secret_basic" || m.token_endpoint_auth_method === "client_secret_post";
}
