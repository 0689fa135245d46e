import { type CryptoKey, createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters } from "jose";

/**
 * The issuer's keys could not be had: its JWKS did not load (network error, timeout, non-200, not a JWK
 * Set) and there is no earlier set to fall back on, or the token names a key the kit could not look for.
 * The server's problem, not the token's: `requireAccessToken` answers 503, never `invalid_token`.
 */
export class KeysUnavailable extends Error {
  override name = "KeysUnavailable";
  constructor(
    /** When a fetch may be tried again, seconds from now (for `Retry-After`). */
    readonly retryAfterSeconds: number,
    cause: unknown,
  ) {
    super("the issuer's JWKS could not be fetched", { cause });
  }
}

export interface KeySetOptions {
  /** The issuer's `jwks_uri`. */
  url: string;
  fetch?: typeof fetch;
  /** How long a fetched set is used before it is fetched again, ms. */
  maxAgeMs?: number;
  /** The least time between the end of one fetch and the start of the next, ms: bounds unknown-kid refetches and retries after a failure. */
  cooldownMs?: number;
  /** Deadline for one fetch, body included, ms. */
  timeoutMs?: number;
}

/** A key getter for `jwtVerify`, as jose's `createLocalJWKSet` returns. */
export type KeyGetter = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/**
 * A remote JWK Set cached per isolate, for the resource-server kit. jose's `createRemoteJWKSet` is not
 * used because on Workers it drops its shared in-flight fetch (so concurrent unknown kids each fetch),
 * records a fetch time only on success (so after a failure every request fetches again) and forgets
 * nothing it could fall back on (so an outage refuses valid tokens). jose still does every JOSE step:
 * each fetched set becomes a `createLocalJWKSet`.
 *
 *   state   what it holds                             a token is verified
 *   none    no set: none fetched yet, or all failed   not at all: KeysUnavailable (503)
 *   fresh   a set fetched under maxAgeMs ago          with that set
 *   stale   a set fetched longer ago                  with a new set if a fetch succeeds, else the stale one
 *
 *   none ──fetch ok──▶ fresh ──maxAgeMs──▶ stale ──fetch ok──▶ fresh
 *   A failed fetch leaves the state as it was, marked failed until a fetch succeeds; while it is, a `kid`
 *   the set lacks is KeysUnavailable (it may be a key published since), not an unknown key.
 *
 * A fetch is wanted when there is no set, the set is older than `maxAgeMs`, or a token names a `kid`
 * the set lacks. At most one runs at a time (concurrent callers await it), and none starts within
 * `cooldownMs` of the end of the last, whether it succeeded or failed. A token without `kid` never
 * causes one: a new set could not tell which key it means any better.
 */
export function createKeySet({ url, fetch: fetchImpl = fetch, maxAgeMs = 600_000, cooldownMs = 30_000, timeoutMs = 5_000 }: KeySetOptions): KeyGetter {
  let current: { keys: KeyGetter; fetchedAt: number } | undefined;
  /** Why the last fetch failed; undefined once one succeeds. */
  let failure: { cause: unknown } | undefined;
  let settledAt = Number.NEGATIVE_INFINITY;
  let pending: Promise<void> | undefined;

  const unavailable = () => new KeysUnavailable(Math.max(1, Math.ceil((settledAt + cooldownMs - Date.now()) / 1000)), failure?.cause);

  function refresh(): Promise<void> {
    if (pending) return pending;
    if (Date.now() < settledAt + cooldownMs) return Promise.resolve();
    pending = load(url, fetchImpl, timeoutMs)
      .then(
        (keys) => {
          current = { keys, fetchedAt: Date.now() };
          failure = undefined;
        },
        (cause: unknown) => {
          failure = { cause };
          // Once per failed fetch, not per request: the cooldown spaces them.
          console.warn(JSON.stringify({ level: "warn", message: "could not fetch the issuer's JWKS", url, error: String(cause) }));
        },
      )
      .finally(() => {
        settledAt = Date.now();
        pending = undefined;
      });
    return pending;
  }

  return async (header, token) => {
    if (!current || Date.now() >= current.fetchedAt + maxAgeMs) await refresh();
    if (!current) throw unavailable();
    try {
      return await current.keys(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || typeof header.kid !== "string") throw error;
      const tried = current;
      await refresh();
      // The kid may be a key published since the last good fetch: only a set as current as can be had says it is unknown.
      if (failure) throw unavailable();
      if (current === tried) throw error;
      return current.keys(header, token);
    }
  };
}

/** One fetch of the set, within `timeoutMs` even if `fetchImpl` ignores its signal. */
async function load(url: string, fetchImpl: typeof fetch, timeoutMs: number): Promise<KeyGetter> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  const deadline = new Promise<never>((_, reject) => controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true }));
  const fetched = (async () => {
    // Redirects are not followed: the issuer publishes its keys at the URL it names.
    const response = await fetchImpl(url, {
      signal: controller.signal,
      redirect: "manual",
      headers: { accept: "application/jwk-set+json, application/json" },
    });
    if (response.status !== 200) throw new Error(`answered HTTP ${response.status}, not 200`);
    // Throws JWKSInvalid for anything but a JWK Set.
    return createLocalJWKSet((await response.json()) as JSONWebKeySet);
  })();
  try {
    return await Promise.race([fetched, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
