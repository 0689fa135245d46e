import * as v from "valibot";

/** A whole number of seconds given as a string (wrangler vars are strings). */
const seconds = (fallback: number, min: number, max: number) =>
  v.optional(
    v.pipe(v.string(), v.regex(/^\d+$/, "must be a whole number of seconds"), v.transform(Number), v.minValue(min), v.maxValue(max)),
    String(fallback),
  );

/** A yes/no setting: `"true"` or `"false"` (a TOML boolean works too). */
const flag = (fallback: boolean) =>
  v.optional(
    v.pipe(
      v.union([v.boolean(), v.picklist(["true", "false"])], 'must be "true" or "false"'),
      v.transform((x) => x === true || x === "true"),
    ),
    fallback,
  );

/** A whole number given as a string. */
const count = (fallback: number, max: number) =>
  v.optional(v.pipe(v.string(), v.regex(/^\d+$/, "must be a whole number"), v.transform(Number), v.maxValue(max)), String(fallback));
/** A comma-separated list of TCP ports, e.g. `"8443,9443"`. */
const ports = v.optional(
  v.pipe(
    v.string(),
    v.regex(/^(\d{1,5}(,\d{1,5})*)?$/, "must be a comma-separated list of port numbers"),
    v.transform((s) => (s ? s.split(",").map(Number) : [])),
    v.check((list) => list.every((p) => p >= 1 && p <= 65_535), "ports are 1-65535"),
  ),
  "",
);

const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"];

/** Whether a string is a P-256 private key as a JWK in JSON. Checked by shape only, and never echoed in an error. */
function isP256PrivateJwk(s: string): boolean {
  try {
    const j = JSON.parse(s) as Record<string, unknown>;
    const coordinate = (m: unknown) => typeof m === "string" && /^[A-Za-z0-9_-]{43}$/.test(m);
    return j?.kty === "EC" && j.crv === "P-256" && coordinate(j.x) && coordinate(j.y) && coordinate(j.d);
  } catch {
    return false;
  }
}

/**
 * Everything Latchkey reads from its environment (wrangler `[vars]` and secrets), with defaults.
 * Parsed once per isolate by `workers/config.ts`; README "Configuration" documents each entry.
 */
export const ConfigSchema = v.pipe(
  v.object({
    /** `dev` (local, seeded), `preview` or `production`. */
    ENVIRONMENT: v.picklist(["dev", "preview", "production"]),
    /** RFC 8414 §2 `issuer`: https (http only for a loopback host), no query, no fragment. */
    ISSUER: v.pipe(
      v.string(),
      v.url(),
      v.check((s) => {
        if (!URL.canParse(s)) return true; // v.url() has said so already
        const u = new URL(s);
        const loopback = LOOPBACK_HOSTS.includes(u.hostname);
        // Every endpoint is served at the root, so the issuer is an origin: no path, query or fragment
        // (an empty `?` or `#` included).
        return (u.protocol === "https:" || (u.protocol === "http:" && loopback)) && s === u.origin;
      }, "must be an https origin (http only on loopback): no path, query, fragment or trailing slash"),
    ),
    /** Bearer token for `/admin`. Without it (or empty) the admin API answers 503 to every request. */
    ADMIN_TOKEN: v.optional(
      v.pipe(
        v.string(),
        // A bearer token cannot carry whitespace (RFC 6750 §2.1): a pasted newline would lock the admin API out.
        v.check((s) => !/\s/.test(s), "must not contain whitespace (a trailing newline from a paste?)"),
        v.transform((s) => (s === "" ? undefined : s)),
      ),
    ),
    /** Encrypts signing keys at rest in the KeyRing Durable Object (HKDF → A256GCM). */
    KEY_ENCRYPTION_KEY: v.pipe(v.string(), v.minLength(32, "must be at least 32 characters")),
    /** Key for signing session cookies and interaction state (HMAC-SHA256). */
    SESSION_SECRET: v.pipe(v.string(), v.minLength(32, "must be at least 32 characters")),
    /**
     * RFC 7591 registration at `/register`: `open` to anyone (what MCP clients expect), `closed`, or
     * `initial_access_token`: only with a token the admin API issued (RFC 7591 §3).
     */
    REGISTRATION_POLICY: v.optional(v.picklist(["open", "closed", "initial_access_token"]), "open"),
    /** Registrations without an initial access token one IP address (an IPv6 /64) may make per hour. 0: no limit. Default 20. */
    REGISTRATIONS_PER_IP_PER_HOUR: count(20, 1_000_000),
    /** A dynamically registered client unused this long is deleted (its grants revoked). 0: never. Default 90 days. */
    CLIENT_IDLE_TTL: v.optional(
      v.pipe(
        v.string(),
        v.regex(/^\d+$/, "must be a whole number of seconds"),
        v.transform(Number),
        v.check((n) => n === 0 || n >= 86_400, "must be 0 (never) or at least 86400 (a day)"),
        v.maxValue(315_360_000),
      ),
      "7776000",
    ),
    /** RFC 9126 §2.2 `expires_in`: how long a pushed authorization request's `request_uri` may be used. Default 60 s. */
    PUSHED_REQUEST_TTL: seconds(60, 5, 600),
    /** RFC 9126 §5 `require_pushed_authorization_requests` for every client. Default false. */
    REQUIRE_PUSHED_AUTHORIZATION_REQUESTS: flag(false),
    /**
     * draft-richer-oauth-pushed-client-registration: unregistered clients may push a request with
     * `client_id=urn:ietf:oauth:parameters:dynamic`. Default true.
     */
    PUSHED_CLIENT_REGISTRATION: flag(true),
    /** Access token lifetime (RFC 9068 `exp - iat`). Default 10 minutes. */
    ACCESS_TOKEN_TTL: seconds(600, 30, 86_400),
    /** ID token lifetime. Default 1 hour. */
    ID_TOKEN_TTL: seconds(3600, 60, 86_400),
    /** Authorization code lifetime; OAuth 2.1 recommends at most 10 minutes. Default 60 s. */
    AUTHORIZATION_CODE_TTL: seconds(60, 10, 600),
    /** Absolute lifetime of a refresh-token family (a grant) from its first issue. Default 30 days. */
    REFRESH_TOKEN_TTL: seconds(2_592_000, 300, 31_536_000),
    /** A refresh token unused this long expires (RFC 9700 §4.14.2). Default 14 days. */
    REFRESH_TOKEN_IDLE_TTL: seconds(1_209_600, 300, 31_536_000),
    /**
     * How long a rotated refresh token may be retried and get back the same successor, provided the
     * successor has never been used: covers a lost response or two hosts racing. Default 30 s; 0 disables.
     */
    REFRESH_TOKEN_REUSE_WINDOW: seconds(30, 0, 300),
    /** Login session lifetime. Default 8 hours. */
    SESSION_TTL: seconds(28_800, 300, 2_592_000),
    /** How long a client record may be served from the isolate cache before re-reading KV. Default 30 s. */
    CLIENT_CACHE_TTL: seconds(30, 0, 3600),
    /** Signing keys rotate this often; the next key is published a rotation period ahead. Default 30 days. */
    KEY_ROTATION_INTERVAL: seconds(2_592_000, 3600, 31_536_000),
    /** Deadline for a whole outbound fetch of a client-supplied URL (metadata document, jwks_uri), body included. Default 3000 ms. */
    OUTBOUND_FETCH_TIMEOUT_MS: v.optional(
      v.pipe(v.string(), v.regex(/^\d+$/, "must be a whole number of milliseconds"), v.transform(Number), v.minValue(100), v.maxValue(10_000)),
      "3000",
    ),
    /** Ports besides 443 that client-supplied URLs may use. Default none. */
    OUTBOUND_FETCH_ALLOWED_PORTS: ports,
    /**
     * DEV ONLY. Lets client-supplied URLs (client_id metadata documents, jwks_uri) use plain http and
     * loopback hosts (localhost, 127.0.0.0/8, [::1]) on any port, so that a local client can be tried
     * against a local server. Refused outside ENVIRONMENT=dev and with a non-loopback ISSUER.
     */
    ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: flag(false),
    /** Shortest time a client ID metadata document is cached, whatever its Cache-Control says. Default 60 s. */
    CIMD_CACHE_MIN_TTL: seconds(60, 0, 3600),
    /** Longest time a client ID metadata document (and keys from a jwks_uri) is cached: the bound on a change taking effect. Default 600 s. */
    CIMD_CACHE_MAX_TTL: seconds(600, 0, 86_400),
    /** Longest accepted lifetime of a client assertion (RFC 7523 `exp` minus `iat`, and `exp` minus now). Default 300 s. */
    CLIENT_ASSERTION_MAX_LIFETIME: seconds(300, 30, 3600),
    /**
     * RFC 9449 §8 server-provided nonces: `required` (default) makes every DPoP proof at the token endpoint
     * and userinfo carry a recent nonce from a `DPoP-Nonce` header, so proofs cannot be made ahead of time
     * (§11.2); `off` never asks for one.
     */
    DPOP_NONCE: v.optional(v.picklist(["required", "off"]), "required"),
    /**
     * Which requests get a log line (`middleware/request-context.ts`): `failures` (default), those answered
     * 4xx or 5xx, or `all`. Workers Logs records every invocation itself, and every audit event is an
     * Analytics Engine data point whatever this says; a line costs CPU on every request it is written for.
     */
    LOG_REQUESTS: v.optional(v.picklist(["failures", "all"]), "failures"),
    /** How far (seconds) a DPoP proof's `iat` may lie from the server's clock, either way (RFC 9449 §11.1). Default 60 s. */
    DPOP_PROOF_WINDOW: seconds(60, 5, 300),
    /** CIBA Core §7.3 `expires_in`: the longest a backchannel request waits for the user. Default 10 minutes. */
    CIBA_REQUEST_TTL: seconds(600, 60, 86_400),
    /** CIBA Core §7.3 / RFC 8628 §3.2 `interval`: the least time between two polls. Default 5 s. */
    POLL_INTERVAL: seconds(5, 1, 60),
    /** RFC 8628 §3.2 `expires_in` of a device code. Default 10 minutes. */
    DEVICE_CODE_TTL: seconds(600, 60, 3600),
    /** RFC 8292 VAPID key (a P-256 private JWK as JSON). Unset: one is generated and kept in a Durable Object. */
    VAPID_PRIVATE_JWK: v.optional(v.pipe(v.string(), v.check(isP256PrivateJwk, "must be a P-256 private key as a JWK in JSON (kty EC, crv P-256, x, y, d)"))),
    /** RFC 8292 §2.1 `sub`: a mailto: or https: contact for push services. */
    VAPID_SUBJECT: v.optional(v.pipe(v.string(), v.regex(/^(mailto:|https:\/\/)/, "must be a mailto: or https: URI")), "mailto:admin@latchkey.invalid"),
    /**
     * draft-ietf-oauth-attestation-based-client-auth-11 §8: `required` (default) makes every Client
     * Attestation PoP carry a recent server challenge (from the challenge endpoint or the
     * `OAuth-Client-Attestation-Challenge` header); `optional` checks one only when it is sent.
     */
    ATTESTATION_CHALLENGE: v.optional(v.picklist(["required", "optional"]), "required"),
    /** Oldest accepted Client Attestation, by its `iat` (older: `use_fresh_attestation`). Default one day. */
    CLIENT_ATTESTATION_MAX_AGE: seconds(86_400, 60, 2_592_000),
    /** How far (seconds) a Client Attestation PoP's `iat` may lie from the server's clock, either way. Default 60 s. */
    ATTESTATION_POP_WINDOW: seconds(60, 5, 300),
    /** How far (seconds) an HTTP message signature's `created` may lie from the server's clock, either way (draft-richer-oauth-httpsig §3.3). Default 30 s. */
    HTTPSIG_WINDOW: seconds(30, 5, 300),
  }),
  // Outside dev, a guessable admin token would hand over the whole server.
  v.check(
    (c) => c.ENVIRONMENT === "dev" || c.ADMIN_TOKEN === undefined || c.ADMIN_TOKEN.length >= 32,
    "ADMIN_TOKEN must be at least 32 characters outside dev",
  ),
  // The dev environment seeds users whose passwords are published: never at an address others can reach.
  v.check(
    (c) => c.ENVIRONMENT !== "dev" || !URL.canParse(c.ISSUER) || LOOPBACK_HOSTS.includes(new URL(c.ISSUER).hostname),
    "ENVIRONMENT=dev (seeded users with published passwords) needs a loopback ISSUER",
  ),
  // A deployed server is reached over the network: https only.
  // (An ISSUER that is no URL at all has its own message already.)
  v.check(
    (c) => c.ENVIRONMENT === "dev" || !URL.canParse(c.ISSUER) || new URL(c.ISSUER).protocol === "https:",
    "ENVIRONMENT production and preview need an https ISSUER",
  ),
  // CIMD "SSRF Attacks": the loopback exception "MUST NOT" be applied "in production deployments".
  v.check(
    (c) => !c.ALLOW_INSECURE_LOOPBACK_CLIENT_IDS || (c.ENVIRONMENT === "dev" && URL.canParse(c.ISSUER) && LOOPBACK_HOSTS.includes(new URL(c.ISSUER).hostname)),
    "ALLOW_INSECURE_LOOPBACK_CLIENT_IDS is only allowed with ENVIRONMENT=dev and a loopback ISSUER",
  ),
  v.check((c) => c.CIMD_CACHE_MIN_TTL <= c.CIMD_CACHE_MAX_TTL, "CIMD_CACHE_MIN_TTL must not exceed CIMD_CACHE_MAX_TTL"),
);

export type ConfigInput = v.InferInput<typeof ConfigSchema>;
export type Config = v.InferOutput<typeof ConfigSchema>;
