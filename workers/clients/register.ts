import type { Client } from "../../schemas/client";
import { now } from "../clock";
import { config } from "../config";
import { randomToken, sha256 } from "../crypto";
import { InvalidClientMetadata } from "../errors";
import { registry } from "./cache";
import { usesSecret, validateClientMetadata } from "./metadata";

/**
 * Creates a client from RFC 7591 metadata: validates it, assigns a random `client_id` (never an
 * `https://` URL, which would read as a metadata document URL, and never `usr_…`, a user's form) and,
 * for secret-based methods, a 256-bit secret stored only as its hash. Returns the RFC 7591 §3.2.1 body.
 */
export async function registerClient(env: Env, input: unknown, registered_by: Client["registered_by"]) {
  // Loopback http notification endpoints only where loopback is the client (local development).
  const metadata = validateClientMetadata(input, { allowHttpLoopbackNotificationEndpoint: config(env).ENVIRONMENT === "dev" });
  const issued_at = now();
  const secret = usesSecret(metadata) ? randomToken(32) : undefined;
  const client: Client = {
    ...metadata,
    client_id: `lk_${randomToken(16)}`,
    client_id_issued_at: issued_at,
    ...(secret ? { client_secret_hash: await sha256(secret), client_secret_expires_at: 0 } : {}),
    registered_by,
  };
  const created = await registry(env).createClient(client);
  if (!created.ok) throw new InvalidClientMetadata("could not assign a client_id; try again");
  const { client_secret_hash: _h, registered_by: _r, ...information } = client;
  return { ...information, ...(secret ? { client_secret: secret } : {}) };
}
