import { DurableObject } from "cloudflare:workers";
import { CompactEncrypt, calculateJwkThumbprint, compactDecrypt, type JWK } from "jose";
import { now as clock } from "../workers/clock";
import { log } from "../workers/observe/log";

/** Algorithms Latchkey signs with: ES256 for access tokens, RS256 (OIDC's mandatory) and ES256 for ID tokens. */
export const SIGNING_ALGS = ["ES256", "RS256"] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/** One signing key and where it is in its life. */
interface StoredKey {
  kid: string;
  alg: SigningAlg;
  /** The private JWK as a compact JWE (`dir`, A256GCM) under a key derived from KEY_ENCRYPTION_KEY. */
  private_jwe: string;
  public_jwk: JWK;
  created_at: number;
  /** When it starts signing. Published from creation, a full rotation interval ahead. */
  activates_at: number;
  /** When it stops signing (the next key's activates_at). */
  retires_at: number;
  /** When it leaves the JWKS: retires_at plus the longest token lifetime and the isolate cache time. */
  removed_at: number;
}

/** What an isolate needs: the signing key per algorithm and the published set. */
export interface KeySet {
  signing: Record<SigningAlg, { kid: string; private_jwk: JWK }>;
  /** RFC 7517 JWK Set of every key that is published (next, current and retired ones). */
  jwks: { keys: JWK[] };
  /** Seconds since the epoch after which the isolate must ask again (before any key change). */
  refresh_at: number;
}

/** How long an isolate may keep a KeySet; rotation retains old keys at least this much longer. */
export const KEYSET_CACHE_SECONDS = 300;

/**
 * KeyRing: the one writer of signing keys. Keys are created on first use and rotated by alarm.
 *
 *   created (published) ──activates_at──► signing ──retires_at──► retired (published) ──removed_at──► gone
 *
 * Each algorithm always has one signing key and one next key already published, so relying parties
 * that cache the JWKS see a key long before it signs anything.
 */
export class KeyRing extends DurableObject<Env> {
  /** Returns the keys in force now, creating or rotating them when due. */
  async current(input: { rotation_interval: number; retain_seconds: number; now: number }): Promise<KeySet> {
    const keys = await this.exclusively(() => this.maintain(input));
    const signing = {} as KeySet["signing"];
    for (const alg of SIGNING_ALGS) {
      const key = keys.find((k) => k.alg === alg && k.activates_at <= input.now && input.now < k.retires_at);
      if (!key) throw new Error(`KeyRing invariant broken: no signing key for ${alg}`);
      signing[alg] = { kid: key.kid, private_jwk: await openPrivateKey(this.env, key.private_jwe) };
    }
    const nextChange = Math.min(...keys.flatMap((k) => [k.activates_at, k.retires_at, k.removed_at]).filter((t) => t > input.now));
    return {
      signing,
      jwks: { keys: keys.map((k) => k.public_jwk) },
      refresh_at: Math.min(input.now + KEYSET_CACHE_SECONDS, nextChange),
    };
  }

  /** Rotation runs here too, so keys turn over even when nobody asks. */
  override async alarm(): Promise<void> {
    const stored = await this.ctx.storage.get<{ rotation_interval: number; retain_seconds: number }>("schedule");
    if (stored) await this.exclusively(() => this.maintain({ ...stored, now: clock() }));
  }

  /**
   * Runs `maintain` with no other call delivered meanwhile. Input gates alone do not make it atomic:
   * key generation awaits WebCrypto, not storage, so two first calls could each generate and store a set
   * and the earlier caller would sign with keys that were overwritten and are never published.
   */
  private exclusively<T>(fn: () => Promise<T>): Promise<T> {
    return this.ctx.blockConcurrencyWhile(fn);
  }

  /**
   * Drops removed keys and makes sure each algorithm has a readable signing key and a published successor.
   * A key sealed under another KEY_ENCRYPTION_KEY (the secret was changed) cannot sign: a signing one is
   * retired at once (its public half stays published, so the tokens it signed still verify) and a successor
   * that never signed is dropped; new keys take their places.
   */
  private async maintain(input: { rotation_interval: number; retain_seconds: number; now: number }): Promise<StoredKey[]> {
    const { rotation_interval, retain_seconds, now } = input;
    const before = (await this.ctx.storage.get<StoredKey[]>("keys")) ?? [];
    let keys = before.filter((k) => k.removed_at > now);
    let changed = keys.length !== before.length;
    for (const k of keys.filter((k) => k.retires_at > now)) {
      if (await readable(this.env, k)) continue;
      log("error", "signing_key_unreadable", { kid: k.kid, alg: k.alg, hint: "KEY_ENCRYPTION_KEY differs from the one the key was sealed under" });
      keys = k.activates_at <= now ? keys.map((x) => (x === k ? { ...x, retires_at: now, removed_at: now + retain_seconds } : x)) : keys.filter((x) => x !== k);
      changed = true;
    }
    for (const alg of SIGNING_ALGS) {
      const upcoming = () => keys.filter((k) => k.alg === alg && k.activates_at > now).sort((a, b) => a.activates_at - b.activates_at)[0];
      let signing = keys.find((k) => k.alg === alg && k.activates_at <= now && now < k.retires_at);
      if (!signing) {
        // First use, a ring that lay idle past a whole rotation, or an unreadable key: one that signs from now.
        signing = await generate(this.env, alg, now, now, upcoming()?.activates_at ?? now + rotation_interval, retain_seconds);
        keys = [...keys, signing];
        changed = true;
      }
      if (!upcoming()) {
        // The signing key needs a published successor, which takes over when the signing key retires.
        const next = await generate(this.env, alg, now, signing.retires_at, signing.retires_at + rotation_interval, retain_seconds);
        keys = [...keys, next];
        changed = true;
      }
    }
    if (changed) {
      await this.ctx.storage.put({ keys, schedule: { rotation_interval, retain_seconds } });
      const nextChange = Math.min(...keys.flatMap((k) => [k.activates_at, k.retires_at, k.removed_at]).filter((t) => t > now));
      await this.ctx.storage.setAlarm(nextChange * 1000);
    }
    return keys;
  }
}

/** Whether the key's private half opens under the current KEY_ENCRYPTION_KEY. */
async function readable(env: Env, key: StoredKey): Promise<boolean> {
  try {
    await openPrivateKey(env, key.private_jwe);
    return true;
  } catch {
    return false;
  }
}

async function generate(env: Env, alg: SigningAlg, now: number, activates_at: number, retires_at: number, retain_seconds: number): Promise<StoredKey> {
  const params =
    alg === "ES256"
      ? { name: "ECDSA", namedCurve: "P-256" }
      : { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
  const pair = (await crypto.subtle.generateKey(params, true, ["sign", "verify"])) as CryptoKeyPair;
  const private_jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JWK;
  const exported = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JWK;
  // RFC 7638 thumbprint as kid: stable, and derived from the key itself.
  const kid = await calculateJwkThumbprint(exported);
  const pub: JWK = alg === "ES256" ? { kty: "EC", crv: exported.crv, x: exported.x, y: exported.y } : { kty: "RSA", n: exported.n, e: exported.e };
  return {
    kid,
    alg,
    private_jwe: await sealPrivateKey(env, { ...private_jwk, kid, alg }),
    public_jwk: { ...pub, kid, alg, use: "sig" },
    created_at: now,
    activates_at,
    retires_at,
    removed_at: retires_at + retain_seconds,
  };
}

/**
 * Signing keys at rest are encrypted (issue: operations): a compact JWE, `dir` + A256GCM, under a
 * 256-bit key derived by HKDF-SHA256 from the KEY_ENCRYPTION_KEY secret. Storage alone never yields
 * a usable private key.
 */
async function keyEncryptionKey(env: Env): Promise<Uint8Array> {
  const secret = env.KEY_ENCRYPTION_KEY;
  if (!secret) throw new Error("KEY_ENCRYPTION_KEY is not configured");
  const ikm = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), "HKDF", false, ["deriveBits"]);
  const info = new TextEncoder().encode("latchkey key-ring private keys");
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info }, ikm, 256));
}

async function sealPrivateKey(env: Env, jwk: JWK): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(jwk)))
    .setProtectedHeader({ alg: "dir", enc: "A256GCM", cty: "jwk+json" })
    .encrypt(await keyEncryptionKey(env));
}

async function openPrivateKey(env: Env, jwe: string): Promise<JWK> {
  const { plaintext } = await compactDecrypt(jwe, await keyEncryptionKey(env), { keyManagementAlgorithms: ["dir"], contentEncryptionAlgorithms: ["A256GCM"] });
  return JSON.parse(new TextDecoder().decode(plaintext)) as JWK;
}
