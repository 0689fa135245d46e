import type { Client } from "../../schemas/client";
import type { RegistrationGate } from "../../schemas/registration";
import { now } from "../clock";
import type { Config } from "../config";
import { randomToken, sha256 } from "../crypto";
import { InvalidClientMetadata, InvalidToken, RateLimited, unreachable } from "../errors";
import { registry } from "./cache";
import { usesSecret, validateRegistration } from "./metadata";

/** RFC 7592 §3: where a dynamically registered client reads, updates and deletes its registration. */
export function registrationClientUri(cfg: Config, clientId: string): string {
  return `${cfg.ISSUER}/register/${encodeURIComponent(clientId)}`;
}

/** A fresh RFC 7592 registration access token and its hash (the only form the Registry keeps). */
export async function mintRegistrationAccessToken(): Promise<{ token: string; hash: string }> {
  const token = `lkm_${randomToken(32)}`;
  return { token, hash: await sha256(token) };
}

/**
 * Creates a client from RFC 7591 metadata: validates it, assigns a random `client_id` (never an
 * `https://` URL, which would read as a metadata document URL, never `usr_…`, a user's form, and never
 * the static `client_id` of pushed client registration) and, for secret-based methods, a 256-bit secret
 * stored only as its hash. A dynamically registered client also gets an RFC 7592 registration access
 * token. Returns the RFC 7591 §3.2.1 body (with RFC 7592 §3's two members when registered dynamically).
 */
export async function registerClient(env: Env, cfg: Config, input: unknown, registered_by: Client["registered_by"], gate?: RegistrationGate) {
  const metadata = await validateRegistration(input, cfg);
  const issued_at = now();
  const secret = usesSecret(metadata) ? randomToken(32) : undefined;
  const management = registered_by === "dynamic_registration" ? await mintRegistrationAccessToken() : undefined;
  const client: Client = {
    ...metadata,
    client_id: `lk_${randomToken(16)}`,
    client_id_issued_at: issued_at,
    ...(secret ? { client_secret_hash: await sha256(secret), client_secret_expires_at: 0 } : {}),
    ...(management ? { registration_access_token_hash: management.hash } : {}),
    registered_by,
  };
  const created = await registry(env).createClient(client, gate);
  if (!created.ok) {
    switch (created.reason) {
      case "exists":
      case "reserved":
        throw new InvalidClientMetadata("could not assign a client_id; try again");
      case "invalid_initial_access_token": {
        const error = new InvalidToken("the initial access token is invalid, expired or used up");
        error.headers["WWW-Authenticate"] = `Bearer realm="${cfg.ISSUER}", error="invalid_token"`;
        throw error;
      }
      case "rate_limited": {
        const error = new RateLimited("too many registrations from this network; try again later");
        error.headers["Retry-After"] = String(created.retry_after);
        throw error;
      }
      default:
        unreachable(created);
    }
  }
  const { client_secret_hash: _h, registration_access_token_hash: _r, registered_by: _b, ...information } = client;
  return {
    ...information,
    ...(secret ? { client_secret: secret } : {}),
    ...(management ? { registration_access_token: management.token, registration_client_uri: registrationClientUri(cfg, client.client_id) } : {}),
  };
}
