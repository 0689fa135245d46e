import { type Client, unusableJwk } from "../../schemas/client";
import { now } from "../clock";
import { type Config, config } from "../config";
import { InvalidClient, OAuthError } from "../errors";
import { underLimit } from "../middleware/rate-limit";
import { clientIdUrlProblem } from "./client-id-url";
import { kvKey } from "./kv-key";
import { validateClientMetadata } from "./metadata";
import { type OutboundPolicy, outboundPolicy, safeFetch } from "./safe-fetch";

/**
 * Clients that are a URL (draft-ietf-oauth-client-id-metadata-document): the client_id is fetched
 * and its document validated and used as the client record, with `registered_by:
 * "client_id_metadata_document"`. Valid documents are cached in the isolate and in KV for their
 * Cache-Control lifetime clamped to [CIMD_CACHE_MIN_TTL, CIMD_CACHE_MAX_TTL] ("Metadata Caching": the AS
 * "SHOULD respect HTTP cache headers" and "MAY define its own upper and/or lower bounds"). Each cached copy
 * carries its own expiry, so a changed document takes effect within CIMD_CACHE_MAX_TTL everywhere.
 * Errors and invalid documents are never cached ("MUST NOT cache error responses").
 */
interface Cached {
  client: Client;
  /** Seconds since the epoch after which the document must be fetched again. */
  expires_at: number;
}

const memory = new Map<string, Cached>();
const MEMORY_MAX = 5000;
/** One fetch per URL at a time per isolate: concurrent requests for a new client share it. */
const inflight = new Map<string, Promise<Client>>();

/**
 * KV entries outlive their expiry by a day; `expires_at` is what counts. An expired copy still says the URL had a
 * valid document, so its refetch is counted against the URL's own budget, not its host's: requests naming
 * made-up URLs on the host cannot lock a known client out.
 */
const KNOWN_FOR = 86_400;

/**
 * The client whose client_id is the URL `clientId`. Throws `invalid_client` saying why the URL or its
 * document cannot be used; the authorization endpoint shows that on its error page instead.
 */
export async function resolveMetadataDocument(env: Env, clientId: string): Promise<Client> {
  const cfg = config(env);
  const problem = clientIdUrlProblem(clientId, outboundPolicy(cfg));
  if (problem) throw new InvalidClient(`the client_id URL ${problem}`);
  const t = now();
  const hit = memory.get(clientId);
  if (hit && hit.expires_at > t) return hit.client;
  const stored = await env.CLIENT_CACHE.get<Cached>(await documentKey(clientId), { type: "json", cacheTtl: 60 });
  if (stored && stored.expires_at > t) {
    remember(clientId, stored);
    return stored.client;
  }
  let pending = inflight.get(clientId);
  if (!pending) {
    const known = stored !== null || hit !== undefined;
    pending = fetchDocument(env, cfg, clientId, known).finally(() => inflight.delete(clientId));
    inflight.set(clientId, pending);
  }
  return pending;
}

async function fetchDocument(env: Env, cfg: Config, clientId: string, known: boolean): Promise<Client> {
  const policy = outboundPolicy(cfg);
  // CIMD_FETCH_LIMIT per host: unknown URLs as client_id cannot turn the server into a request cannon. A URL
  // known to have had a valid document has a budget of its own (KNOWN_FOR).
  const budget = known ? `cimd-url:${await documentKey(clientId)}` : `cimd:${new URL(clientId).host}`;
  if (!(await underLimit(env.CIMD_FETCH_LIMIT, budget))) {
    throw new InvalidClient("the client's metadata document was fetched too often; try again in a minute", `${clientId}: rate limited`);
  }
  const fetched = await safeFetch(clientId, policy, { accept: "application/json" });
  if (!fetched.ok) throw new InvalidClient(`the client's metadata document ${fetched.description}`, `${clientId}: ${fetched.reason}`);
  const t = now();
  const client = validateMetadataDocument(clientId, fetched.json, policy, t);
  const unusable = await unusableJwk(client.jwks);
  if (unusable) throw new InvalidClient(`the client's metadata document is invalid: ${unusable.description}`, `${clientId}: ${unusable.detail}`);
  const ttl = Math.min(cfg.CIMD_CACHE_MAX_TTL, Math.max(cfg.CIMD_CACHE_MIN_TTL, freshness(fetched.headers)));
  if (ttl > 0) {
    const entry: Cached = { client, expires_at: t + ttl };
    remember(clientId, entry);
    // Best effort: KV allows one write per key per second, and isolates that refetch together may collide.
    await env.CLIENT_CACHE.put(await documentKey(clientId), JSON.stringify(entry), { expirationTtl: ttl + KNOWN_FOR }).catch((error: unknown) => {
      console.warn(JSON.stringify({ level: "warn", message: "could not cache a client metadata document in KV", client_id: clientId, error: String(error) }));
    });
  }
  return client;
}

/** Members a metadata document must never carry ("Credential and Key Material Restrictions"). */
const FORBIDDEN = ["client_secret", "client_secret_expires_at"];
/** Methods without a shared secret; a missing method means `none` (not RFC 7591's client_secret_basic). */
const DOCUMENT_AUTH_METHODS = ["none", "private_key_jwt", "httpsig_client_auth"];

/**
 * Validates a fetched document as client metadata: the document's own rules, then every rule a
 * registered client obeys (`validateClientMetadata`: redirect URIs, grant types, keys). Throws
 * `invalid_client` naming the first problem.
 */
export function validateMetadataDocument(clientId: string, document: unknown, policy: OutboundPolicy, t: number): Client {
  const invalid = (reason: string) => new InvalidClient(`the client's metadata document is invalid: ${reason}`);
  if (typeof document !== "object" || document === null || Array.isArray(document)) throw invalid("it is not a JSON object");
  const doc = document as Record<string, unknown>;
  // "MUST contain a client_id property whose value MUST match the Client Identifier URL ... using simple string comparison"
  if (doc.client_id !== clientId) throw invalid("its client_id is not exactly the URL it was fetched from");
  // "the client_secret and client_secret_expires_at properties MUST NOT be used"
  for (const name of FORBIDDEN) if (name in doc) throw invalid(`it must not contain ${name}`);
  // "the token_endpoint_auth_method property MUST NOT include client_secret_post, client_secret_basic,
  // client_secret_jwt, or any other method based around a shared symmetric secret"
  const method = doc.token_endpoint_auth_method ?? "none";
  if (typeof method !== "string" || !DOCUMENT_AUTH_METHODS.includes(method)) {
    throw invalid("token_endpoint_auth_method must be none, private_key_jwt or httpsig_client_auth (a document cannot share a secret)");
  }
  let metadata: ReturnType<typeof validateClientMetadata>;
  try {
    // "private key material MUST NOT be included": JwksSchema admits public keys only.
    metadata = validateClientMetadata({ ...doc, token_endpoint_auth_method: method }, policy);
  } catch (error) {
    if (error instanceof OAuthError) throw invalid(error.description);
    throw error;
  }
  return { ...metadata, client_id: clientId, client_id_issued_at: t, registered_by: "client_id_metadata_document" };
}

/**
 * Seconds the response may be reused (RFC 9111 §4.2.1 for a shared cache: `s-maxage`, else `max-age`,
 * minus `Age`); 0 for `no-store`, `no-cache` or no directive, which the minimum bound then covers.
 * Why hand-written: three directives of a comma-separated list, and a wrong answer only moves the
 * cache lifetime within bounds the configuration already fixes.
 */
export function freshness(headers: Headers): number {
  const directives = new Map<string, string>();
  for (const part of (headers.get("cache-control") ?? "").toLowerCase().split(",")) {
    const [name, value = ""] = part.trim().split("=", 2);
    if (name) directives.set(name, value.replace(/^"|"$/g, ""));
  }
  if (directives.has("no-store") || directives.has("no-cache")) return 0;
  const lifetime = directives.get("s-maxage") ?? directives.get("max-age");
  if (lifetime === undefined || !/^\d+$/.test(lifetime)) return 0;
  const age = Number(headers.get("age") ?? 0);
  return Math.max(0, Number(lifetime) - (Number.isFinite(age) ? age : 0));
}

/** The KV key of a client_id URL's cached document (`kv-key.ts`: hashed when the URL is long). */
function documentKey(clientId: string): Promise<string> {
  return kvKey(`cimd:${clientId}`);
}

function remember(clientId: string, entry: Cached): void {
  if (memory.size >= MEMORY_MAX) memory.delete(memory.keys().next().value as string);
  memory.set(clientId, entry);
}

/** Tests only: forget this isolate's copies (KV copies expire by their own `expires_at`). */
export function forgetMetadataDocuments(): void {
  memory.clear();
}
