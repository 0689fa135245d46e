import { type Context, Hono } from "hono";
import { type Client, clientInformation } from "../../schemas/client";
import { evict, registry } from "../clients/cache";
import { usesSecret, validateRegistration } from "../clients/metadata";
import { mintRegistrationAccessToken, registrationClientUri } from "../clients/register";
import { randomToken, sha256 } from "../crypto";
import { InvalidClientMetadata, unreachable } from "../errors";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { invalidToken, readRegistrationBody, requireBearer } from "../middleware/registration-body";
import { audit } from "../observe/audit";
import type { AppEnv } from "../types";

/**
 * RFC 7592 client configuration endpoint, `/register/{client_id}`: a dynamically registered client
 * reads (GET), replaces (PUT) or deletes (DELETE) its registration with its registration access token.
 * Every read and update rotates that token, since only its hash is kept: the response carries the new
 * one, and the old one stops working (RFC 7592 §3 allows the rotation). A bad token, an unknown client
 * and a client registered through the admin API all answer 401 `invalid_token`: RFC 7592 §2.1 "If the
 * client does not exist on this server, the server MUST respond with HTTP 401 Unauthorized". An update's
 * token is checked before its body, so a caller without it learns nothing from the validation.
 */
export const clientConfiguration = new Hono<AppEnv>();

const BAD_TOKEN = "the registration access token is invalid, or this client cannot be managed with it";

/** RFC 7592 §2.2: fields the server manages, which an update must not carry. */
const SERVER_MANAGED = ["registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"] as const;

clientConfiguration.get("/register/:client_id", noStore, async (c) => {
  const clientId = c.req.param("client_id");
  const tokenHash = await sha256(requireBearer(c, "the registration access token"));
  const next = await mintRegistrationAccessToken();
  const result = await registry(c.env).manageClient({ client_id: clientId, token_hash: tokenHash, new_token_hash: next.hash });
  if (!result.ok) throw invalidToken(c, BAD_TOKEN);
  return c.json(configurationResponse(c, result.client, next.token));
});

clientConfiguration.put("/register/:client_id", noStore, async (c) => {
  const clientId = c.req.param("client_id");
  const tokenHash = await sha256(requireBearer(c, "the registration access token"));
  // The token first (RFC 7592 §2.2, RFC 6750 §3.1): without it, nobody learns what the body would have
  // met, nor which client_ids exist. `manageClient` checks it again, atomically with the update.
  const current = await registry(c.env).getClient(clientId);
  if (current?.registration_access_token_hash !== tokenHash) throw invalidToken(c, BAD_TOKEN);
  const body = await readRegistrationBody(c);
  // RFC 7592 §2.2: "The client MUST include its client_id field in the request, and it MUST be the same
  // as its currently issued client identifier."
  if (body.client_id !== clientId) throw new InvalidClientMetadata("client_id must be present and be this client's client_id");
  // RFC 7592 §2.2: the request "MUST NOT include the registration_access_token, registration_client_uri,
  // client_secret_expires_at, or client_id_issued_at fields".
  const managed = SERVER_MANAGED.find((name) => name in body);
  if (managed) throw new InvalidClientMetadata(`${managed} is managed by the server and must not be sent`);
  const { client_id: _id, client_secret, ...fields } = body;
  if (client_secret !== undefined && typeof client_secret !== "string") throw new InvalidClientMetadata("client_secret must be a string");
  // RFC 7592 §2.2: validated as at registration.
  const metadata = await validateRegistration(fields, c.get("cfg"));
  const secret = usesSecret(metadata) ? randomToken(32) : undefined;
  const next = await mintRegistrationAccessToken();
  const result = await registry(c.env).manageClient({
    client_id: clientId,
    token_hash: tokenHash,
    new_token_hash: next.hash,
    update: {
      metadata,
      ...(client_secret !== undefined ? { presented_secret_hash: await sha256(client_secret) } : {}),
      ...(secret ? { fresh_secret_hash: await sha256(secret) } : {}),
    },
  });
  if (!result.ok) {
    switch (result.reason) {
      case "invalid_token":
        throw invalidToken(c, BAD_TOKEN);
      case "secret_mismatch":
        // RFC 7592 §2.2: "The client MUST NOT be allowed to overwrite its existing client secret with its own chosen value."
        throw new InvalidClientMetadata("client_secret does not match the client's current secret");
      default:
        unreachable(result.reason);
    }
  }
  evict(`client:${clientId}`);
  audit(c, { event: "client.updated", outcome: "success", client_id: clientId, detail: "RFC 7592 update" });
  return c.json({ ...configurationResponse(c, result.client, next.token), ...(result.secret_issued && secret ? { client_secret: secret } : {}) });
});

clientConfiguration.delete("/register/:client_id", noStore, async (c) => {
  const clientId = c.req.param("client_id");
  const tokenHash = await sha256(requireBearer(c, "the registration access token"));
  // RFC 7592 §2.3: the server "MUST invalidate the client ID, client secret, and registration access
  // token" and "SHOULD immediately invalidate all existing authorization grants and currently active
  // access tokens, refresh tokens, and other tokens associated with this client".
  const result = await registry(c.env).deleteClient(clientId, { token_hash: tokenHash });
  if (!result.ok) throw invalidToken(c, BAD_TOKEN);
  evict(`client:${clientId}`);
  audit(c, { event: "client.deleted", outcome: "success", client_id: clientId, detail: "RFC 7592 delete" });
  return c.body(null, 204);
});
clientConfiguration.all("/register/:client_id", methodNotAllowed("GET, PUT, DELETE"));

/** RFC 7592 §3: the client information response, with the (new) registration access token and this endpoint's URI. */
function configurationResponse(c: Context<AppEnv>, client: Client, registrationAccessToken: string) {
  return {
    ...clientInformation(client),
    registration_access_token: registrationAccessToken,
    registration_client_uri: registrationClientUri(c.get("cfg"), client.client_id),
  };
}
