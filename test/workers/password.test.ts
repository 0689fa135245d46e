import { afterEach, describe, expect, it, vi } from "vitest";
import type { PasswordHash } from "../../schemas/resource";
import { hashPassword, PBKDF2_CALL_LIMIT, PBKDF2_ITERATIONS, verifyPassword } from "../../workers/password";

/**
 * Password hashing (`workers/password.ts`): PBKDF2-HMAC-SHA256 at 600,000 iterations, in calls the hosted
 * runtime accepts. The expected hashes were computed with Node's `crypto.pbkdf2Sync`, chained the same way.
 */
const PASSWORD = "correct horse battery staple";
const SALT = "AAECAwQFBgcICQoLDA0ODw"; // bytes 00..0f

afterEach(() => vi.restoreAllMocks());

describe("password hashes", () => {
  const vectors: Array<[string, PasswordHash]> = [
    ["600,000 iterations in six calls", { alg: "PBKDF2-SHA256-CHAIN", iterations: 600_000, salt: SALT, hash: "rfDFKdlz6hQsDnqes4jawGjfp-mn20j77PR84Xj0KfE" }],
    [
      "250,000 iterations as 100,000 + 100,000 + 50,000",
      { alg: "PBKDF2-SHA256-CHAIN", iterations: 250_000, salt: SALT, hash: "WgEmVxdp4OoTt76hpM_4fXphhWjXxEM92vjILFzZjYM" },
    ],
    [
      "a single-call PBKDF2-SHA256 hash, as first written",
      { alg: "PBKDF2-SHA256", iterations: 1000, salt: SALT, hash: "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4" },
    ],
  ];

  it.each(vectors)("verifies %s, and refuses another password", async (_, stored) => {
    expect(await verifyPassword(PASSWORD, stored)).toBe(true);
    expect(await verifyPassword(`${PASSWORD}!`, stored)).toBe(false);
  });

  it("hashes at 600,000 iterations with a fresh salt, never asking one PBKDF2 call for more than the hosted runtime allows", async () => {
    const counts: number[] = [];
    const deriveBits = crypto.subtle.deriveBits.bind(crypto.subtle);
    vi.spyOn(crypto.subtle, "deriveBits").mockImplementation((algorithm, key, length) => {
      counts.push((algorithm as { iterations: number }).iterations);
      return deriveBits(algorithm, key, length);
    });
    const stored = await hashPassword(PASSWORD);
    expect(stored).toEqual({
      alg: "PBKDF2-SHA256-CHAIN",
      iterations: PBKDF2_ITERATIONS,
      salt: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      hash: expect.any(String),
    });
    expect(counts).toEqual([100_000, 100_000, 100_000, 100_000, 100_000, 100_000]);
    expect(Math.max(...counts)).toBeLessThanOrEqual(PBKDF2_CALL_LIMIT);
    expect(await verifyPassword(PASSWORD, stored)).toBe(true);
    expect((await hashPassword(PASSWORD)).salt).not.toBe(stored.salt);
  });
});
