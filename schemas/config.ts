import * as v from "valibot";

/** A whole number of seconds given as a string (wrangler vars are strings). */
const seconds = (fallback: number, min: number, max: number) =>
  v.optional(
    v.pipe(v.string(), v.regex(/^\d+$/, "must be a whole number of seconds"), v.transform(Number), v.minValue(min), v.maxValue(max)),
    String(fallback),
  );

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
        const u = new URL(s);
        const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(u.hostname);
        return (u.protocol === "https:" || (u.protocol === "http:" && loopback)) && !u.search && !u.hash && !s.endsWith("/");
      }, "must be an https URL (http only on loopback) without query, fragment or trailing slash"),
    ),
    /** Bearer token for `/admin`. Without it the admin API refuses every request. */
    ADMIN_TOKEN: v.optional(v.pipe(v.string(), v.minLength(1))),
    /** Key for signing session cookies and interaction state (HMAC-SHA256). */
    SESSION_SECRET: v.pipe(v.string(), v.minLength(32, "must be at least 32 characters")),
    /** RFC 7591 registration at `/register`: `open` to anyone (what MCP clients expect) or `closed`. */
    REGISTRATION_POLICY: v.optional(v.picklist(["open", "closed"]), "open"),
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
    /** CIBA Core §7.3 `expires_in`: the longest a backchannel request waits for the user. Default 10 minutes. */
    CIBA_REQUEST_TTL: seconds(600, 60, 86_400),
    /** CIBA Core §7.3 / RFC 8628 §3.2 `interval`: the least time between two polls. Default 5 s. */
    POLL_INTERVAL: seconds(5, 1, 60),
    /** RFC 8628 §3.2 `expires_in` of a device code. Default 10 minutes. */
    DEVICE_CODE_TTL: seconds(600, 60, 3600),
    /** RFC 8292 VAPID key (a P-256 private JWK as JSON). Unset: one is generated and kept in a Durable Object. */
    VAPID_PRIVATE_JWK: v.optional(v.pipe(v.string(), v.minLength(1))),
    /** RFC 8292 §2.1 `sub`: a mailto: or https: contact for push services. */
    VAPID_SUBJECT: v.optional(v.pipe(v.string(), v.regex(/^(mailto:|https:\/\/)/, "must be a mailto: or https: URI")), "mailto:admin@latchkey.invalid"),
  }),
  // Outside dev, a guessable admin token would hand over the whole server.
  v.check(
    (c) => c.ENVIRONMENT === "dev" || c.ADMIN_TOKEN === undefined || c.ADMIN_TOKEN.length >= 32,
    "ADMIN_TOKEN must be at least 32 characters outside dev",
  ),
);

export type ConfigInput = v.InferInput<typeof ConfigSchema>;
export type Config = v.InferOutput<typeof ConfigSchema>;
