import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { calculateJwkThumbprint, createLocalJWKSet, importJWK, type JWK, jwtVerify, SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { KEYSET_CACHE_SECONDS, type KeyRing, type KeySet, SIGNING_ALGS } from "../../durable-objects/key-ring";
import { setClock } from "../../workers/clock";
import { config } from "../../workers/config";
import { ownKeys, publishedJwks, resetKeyCache, signingKey } from "../../workers/tokens/keys";

/**
 * KeyRing: one signing and one published next key per algorithm, kids are RFC 7638 thumbprints,
 * rotation publishes a key a full interval before it signs and keeps a retired one published for
 * retain_seconds. Times are real seconds (T) so that scheduled alarms never fire on their own.
 */
const T = Math.floor(Date.now() / 1000);
const ROTATION = 7200;
const RETAIN = 1000;
const SCHEDULE = { rotation_interval: ROTATION, retain_seconds: RETAIN };
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi"];

type Stub = DurableObjectStub<KeyRing>;

interface StoredKey {
  kid: string;
  alg: string;
  activates_at: number;
  retires_at: number;
  removed_at: number;
}

afterEach(() => {
  setClock();
  resetKeyCache();
});

function ring(): Stub {
  return env.KEY_RING.get(env.KEY_RING.newUniqueId());
}

function at(stub: Stub, now: number): Promise<KeySet> {
  return stub.current({ ...SCHEDULE, now });
}

function kids(set: KeySet): string[] {
  return set.jwks.keys.map((k) => k.kid as string).sort();
}

function signingKids(set: KeySet): Record<string, string> {
  return { ES256: set.signing.ES256.kid, RS256: set.signing.RS256.kid };
}

/** The stored keys (lifecycle times, no key material) and the alarm. */
function stored(stub: Stub) {
  return runInDurableObject(stub, async (_, state) => ({
    keys: ((await state.storage.get<StoredKey[]>("keys")) ?? []).map(({ kid, alg, activates_at, retires_at, removed_at }) => ({
      kid,
      alg,
      activates_at,
      retires_at,
      removed_at,
    })),
    alarm: await state.storage.getAlarm(),
  }));
}

/** Signs with the answer's signing key for `alg` and verifies against the answer's own JWKS. */
async function signAndVerify(set: KeySet, alg: "ES256" | "RS256", jwks: { keys: JWK[] } = set.jwks): Promise<string> {
  const { kid, private_jwk } = set.signing[alg];
  const jwt = await new SignJWT({ sub: "usr_alice" }).setProtectedHeader({ alg, kid }).sign(await importJWK(private_jwk, alg));
  const { protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(jwks));
  return protectedHeader.kid as string;
}

describe("KeyRing: first use", () => {
  it("creates one signing and one next key per algorithm, all published without private members", async () => {
    const stub = ring();
    const set = await at(stub, T);
    expect(set.jwks.keys.map((k) => k.alg).sort()).toEqual(["ES256", "ES256", "RS256", "RS256"]);
    for (const k of set.jwks.keys) {
      for (const member of PRIVATE_MEMBERS) expect(k).not.toHaveProperty(member);
      expect(Object.keys(k).sort()).toEqual(k.kty === "EC" ? ["alg", "crv", "kid", "kty", "use", "x", "y"] : ["alg", "e", "kid", "kty", "n", "use"]);
      expect(k).toMatchObject(k.alg === "ES256" ? { kty: "EC", crv: "P-256", use: "sig" } : { kty: "RSA", e: "AQAB", use: "sig" });
    }
    for (const alg of SIGNING_ALGS) {
      expect(set.jwks.keys.map((k) => k.kid)).toContain(set.signing[alg].kid);
      expect(set.signing[alg].private_jwk).toMatchObject({ kid: set.signing[alg].kid, alg, d: expect.any(String) });
    }
    expect(set.refresh_at).toBe(T + KEYSET_CACHE_SECONDS);
    const { keys, alarm } = await stored(stub);
    const byRole = (alg: string, activates_at: number) => keys.find((k) => k.alg === alg && k.activates_at === activates_at);
    for (const alg of SIGNING_ALGS) {
      expect(byRole(alg, T)).toEqual({ kid: set.signing[alg].kid, alg, activates_at: T, retires_at: T + ROTATION, removed_at: T + ROTATION + RETAIN });
      expect(byRole(alg, T + ROTATION)).toMatchObject({ retires_at: T + 2 * ROTATION, removed_at: T + 2 * ROTATION + RETAIN });
    }
    expect(alarm).toBe((T + ROTATION) * 1000);
  });

  it("uses the RFC 7638 JWK thumbprint (SHA-256) as kid", async () => {
    const set = await at(ring(), T);
    for (const k of set.jwks.keys) expect(k.kid).toBe(await calculateJwkThumbprint(k, "sha256"));
    expect(new Set(kids(set)).size).toBe(4);
  });

  it("signs with a private key whose public half is in the JWKS, for both algorithms", async () => {
    const set = await at(ring(), T);
    expect(await signAndVerify(set, "ES256")).toBe(set.signing.ES256.kid);
    expect(await signAndVerify(set, "RS256")).toBe(set.signing.RS256.kid);
  });

  it("answers repeated calls with the same keys and writes nothing", async () => {
    const stub = ring();
    const first = await at(stub, T);
    const before = await stored(stub);
    for (const now of [T, T + 1, T + ROTATION - 1]) {
      const again = await at(stub, now);
      expect(signingKids(again)).toEqual(signingKids(first));
      expect(kids(again)).toEqual(kids(first));
    }
    expect(await stored(stub)).toEqual(before);
  });

  it("concurrent first calls agree on one key set (no key is handed out that is not stored)", async () => {
    const stub = ring();
    const answers = await Promise.all(Array.from({ length: 8 }, () => at(stub, T)));
    const { keys } = await stored(stub);
    expect(keys).toHaveLength(4);
    for (const a of answers) {
      expect(signingKids(a)).toEqual(signingKids(answers[0] as KeySet));
      expect(kids(a)).toEqual(keys.map((k) => k.kid).sort());
    }
  });
});

describe("KeyRing: rotation", () => {
  it("after rotation_interval the former next key signs, a new next key is published, the old one stays until retires_at + retain_seconds", async () => {
    const stub = ring();
    const first = await at(stub, T);
    const firstNext = Object.fromEntries((await stored(stub)).keys.filter((k) => k.activates_at === T + ROTATION).map((k) => [k.alg, k.kid]));

    const rotated = await at(stub, T + ROTATION);
    expect(signingKids(rotated)).toEqual(firstNext);
    expect(rotated.jwks.keys).toHaveLength(6);
    for (const kid of kids(first)) expect(kids(rotated)).toContain(kid);
    const { keys, alarm } = await stored(stub);
    const newNext = keys.filter((k) => k.activates_at === T + 2 * ROTATION);
    expect(newNext.map((k) => k.alg).sort()).toEqual(["ES256", "RS256"]);
    for (const k of newNext) expect(k).toMatchObject({ retires_at: T + 3 * ROTATION, removed_at: T + 3 * ROTATION + RETAIN });
    expect(alarm).toBe((T + ROTATION + RETAIN) * 1000);
    // A token signed just before the rotation still verifies against the JWKS after it.
    expect(await signAndVerify(first, "ES256", rotated.jwks)).toBe(first.signing.ES256.kid);

    const lastMoment = await at(stub, T + ROTATION + RETAIN - 1);
    expect(kids(lastMoment)).toEqual(kids(rotated));
    expect(lastMoment.refresh_at).toBe(T + ROTATION + RETAIN);

    const removed = await at(stub, T + ROTATION + RETAIN);
    expect(removed.jwks.keys).toHaveLength(4);
    for (const alg of SIGNING_ALGS) expect(kids(removed)).not.toContain(first.signing[alg].kid);
    expect(signingKids(removed)).toEqual(firstNext);
    expect((await stored(stub)).alarm).toBe((T + 2 * ROTATION) * 1000);
  });

  it("refresh_at is the next key change when that comes before now + 300", async () => {
    const stub = ring();
    await at(stub, T);
    expect((await at(stub, T + ROTATION - 10)).refresh_at).toBe(T + ROTATION);
    expect((await at(stub, T + ROTATION - KEYSET_CACHE_SECONDS)).refresh_at).toBe(T + ROTATION);
    expect((await at(stub, T + ROTATION - KEYSET_CACHE_SECONDS - 1)).refresh_at).toBe(T + ROTATION - 1);
  });

  it("over several rotations: never signs with a key not published in an earlier answer, and nothing changes before refresh_at", async () => {
    const stub = ring();
    const published = new Set<string>();
    let now = T;
    let answer = await at(stub, now);
    for (const kid of kids(answer)) published.add(kid);
    // Irregular steps that land before, on and after key changes, none longer than a rotation.
    const steps = [1, 299, 300, 3000, 3599, 1, 7199, 999, 1, 2500, 4000, 1200, 6000, 7000, 1000, 299, 5000];
    for (const step of steps) {
      now += step;
      answer = await at(stub, now);
      for (const alg of SIGNING_ALGS) expect(published, `${alg} signing key at T+${now - T}`).toContain(answer.signing[alg].kid);
      expect(answer.refresh_at).toBeGreaterThan(now);
      expect(answer.refresh_at).toBeLessThanOrEqual(now + KEYSET_CACHE_SECONDS);
      // What a cache may keep until refresh_at is still exactly what the ring would answer then.
      const probe = await at(stub, answer.refresh_at - 1);
      expect(signingKids(probe)).toEqual(signingKids(answer));
      expect(kids(probe)).toEqual(kids(answer));
      now = answer.refresh_at - 1;
      for (const kid of kids(answer)) published.add(kid);
    }
    expect(now - T).toBeGreaterThan(4 * ROTATION);
  });

  it("the alarm rotates and removes keys when nobody asks, and keeps publish-before-use", async () => {
    const stub = ring();
    const first = await at(stub, T);
    setClock(() => (T + ROTATION) * 1000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    let s = await stored(stub);
    expect(s.keys).toHaveLength(6);
    expect(s.alarm).toBe((T + ROTATION + RETAIN) * 1000);

    setClock(() => (T + ROTATION + RETAIN) * 1000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    s = await stored(stub);
    expect(s.keys).toHaveLength(4);
    expect(s.alarm).toBe((T + 2 * ROTATION) * 1000);

    setClock(() => (T + 2 * ROTATION) * 1000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    s = await stored(stub);
    expect(s.keys.map((k) => k.activates_at).sort()).toEqual([
      T + ROTATION,
      T + ROTATION,
      T + 2 * ROTATION,
      T + 2 * ROTATION,
      T + 3 * ROTATION,
      T + 3 * ROTATION,
    ]);
    expect(s.alarm).toBe((T + 2 * ROTATION + RETAIN) * 1000);

    // The keys signing now were published since the first answer's rotation (the alarm did it, not a request).
    const now = await at(stub, T + 2 * ROTATION);
    const publishedAtFirstRotation = s.keys.filter((k) => k.activates_at === T + 2 * ROTATION).map((k) => k.kid);
    expect(Object.values(signingKids(now)).sort()).toEqual(publishedAtFirstRotation.sort());
    for (const alg of SIGNING_ALGS) expect(kids(now)).not.toContain(first.signing[alg].kid);
  });

  it("an alarm on a ring that was never used does nothing", async () => {
    const stub = ring();
    await runInDurableObject<KeyRing, void>(stub, (instance) => instance.alarm());
    expect(await stored(stub)).toEqual({ keys: [], alarm: null });
  });
});

describe("workers/tokens/keys.ts over the KeyRing", () => {
  it("a token signed with signingKey() verifies against publishedJwks(), for ES256 and RS256", async () => {
    for (const alg of SIGNING_ALGS) {
      const { kid, key } = await signingKey(env, alg, T);
      const jwt = await new SignJWT({ sub: "usr_alice" }).setProtectedHeader({ alg, kid }).setIssuedAt(T).sign(key);
      const { body, max_age } = await publishedJwks(env, T);
      const { protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(JSON.parse(body)), { currentDate: new Date(T * 1000) });
      expect(protectedHeader).toEqual({ alg, kid });
      expect(max_age).toBe(KEYSET_CACHE_SECONDS);
      for (const k of JSON.parse(body).keys as JWK[]) for (const member of PRIVATE_MEMBERS) expect(k).not.toHaveProperty(member);
    }
  });

  it("after a rotation, signingKey() uses the key published a rotation ahead and old tokens still verify", async () => {
    const rotation = config(env).KEY_ROTATION_INTERVAL;
    const before = await signingKey(env, "ES256", T);
    const oldJwt = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: before.kid }).sign(before.key);
    const jwksBefore = JSON.parse((await publishedJwks(env, T)).body) as { keys: JWK[] };
    resetKeyCache();
    const after = await signingKey(env, "ES256", T + rotation);
    expect(after.kid).not.toBe(before.kid);
    expect(jwksBefore.keys.map((k) => k.kid)).toContain(after.kid);
    const jwksAfter = createLocalJWKSet(JSON.parse((await publishedJwks(env, T + rotation)).body));
    expect((await jwtVerify(oldJwt, jwksAfter)).protectedHeader.kid).toBe(before.kid);
  });
});

describe("KeyRing: a changed KEY_ENCRYPTION_KEY", () => {
  it("retires the keys it cannot open and signs with new ones; the JWKS keeps the old public halves, so their tokens verify", async () => {
    const stub = ring();
    const first = await at(stub, T);
    const oldSigning = Object.values(signingKids(first));
    const oldNext = kids(first).filter((k) => !oldSigning.includes(k));
    await runInDurableObject(stub, (instance) => {
      (instance as unknown as { env: Env }).env = { ...env, KEY_ENCRYPTION_KEY: "a-different-key-encryption-key-0123456789" };
    });
    const after = await at(stub, T + 10);
    for (const alg of SIGNING_ALGS) {
      expect(oldSigning).not.toContain(after.signing[alg].kid);
      await signAndVerify(after, alg);
    }
    // Retired now and still published until T + 10 + RETAIN; the successors that never signed are gone.
    for (const kid of oldSigning) expect(kids(after)).toContain(kid);
    for (const kid of oldNext) expect(kids(after)).not.toContain(kid);
    for (const alg of SIGNING_ALGS) expect(await signAndVerify(first, alg, after.jwks)).toBe(first.signing[alg].kid);
    const { keys } = await stored(stub);
    for (const kid of oldSigning) expect(keys.find((k) => k.kid === kid)).toMatchObject({ retires_at: T + 10, removed_at: T + 10 + RETAIN });
    for (const alg of SIGNING_ALGS) {
      const current = keys.find((k) => k.kid === after.signing[alg].kid);
      expect(current).toMatchObject({ activates_at: T + 10, retires_at: T + 10 + ROTATION });
      expect(keys.filter((k) => k.alg === alg && k.activates_at === T + 10 + ROTATION)).toHaveLength(1);
    }
    // And nothing changes on the next call.
    expect(kids(await at(stub, T + 20))).toEqual(kids(after));
  });

  it("an isolate holding the older set loads it again for a token of the new key, at most every 30 s", async () => {
    const named = env.KEY_RING.get(env.KEY_RING.idFromName("key-ring"));
    await ownKeys(env, T); // this isolate's copy, from before the change
    const original = env.KEY_ENCRYPTION_KEY;
    await runInDurableObject(named, (instance) => {
      (instance as unknown as { env: Env }).env = { ...env, KEY_ENCRYPTION_KEY: "a-different-key-encryption-key-0123456789" };
    });
    try {
      const cfg = config(env);
      const retain_seconds = Math.max(cfg.ACCESS_TOKEN_TTL, cfg.ID_TOKEN_TTL) + KEYSET_CACHE_SECONDS + 60;
      const fresh = await named.current({ rotation_interval: cfg.KEY_ROTATION_INTERVAL, retain_seconds, now: T + 1 });
      const { kid, private_jwk } = fresh.signing.ES256;
      const jwt = await new SignJWT({ sub: "usr_alice" }).setProtectedHeader({ alg: "ES256", kid }).sign(await importJWK(private_jwk, "ES256"));
      const verifyAt = async (t: number) => (await jwtVerify(jwt, await ownKeys(env, t), { currentDate: new Date(T * 1000) })).protectedHeader.kid;
      await expect(verifyAt(T + 10)).rejects.toThrow("no applicable key found in the JSON Web Key Set");
      expect(await verifyAt(T + 30)).toBe(kid);
    } finally {
      await runInDurableObject(named, (instance) => {
        (instance as unknown as { env: Env }).env = { ...env, KEY_ENCRYPTION_KEY: original };
      });
    }
  });
});
