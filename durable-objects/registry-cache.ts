import type { Client } from "../schemas/client";
import type { Resource } from "../schemas/resource";
import { kvKey } from "../workers/clients/kv-key";
import { now } from "../workers/clock";
import { log } from "../workers/observe/log";
import { listAttesterRecords } from "./registry-attestation";

/** The KV keys the hot path reads (`workers/clients/cache.ts`), each a record the Registry owns. */
export type CacheKey = `client:${string}` | `resource-uri:${string}` | "attesters";

/**
 * A fill for a miss is skipped when the key was written this recently (seconds): the write is still
 * reaching KV's edge caches (which keep a read, a miss too, for 60 s), and KV takes one write a second per key.
 */
const FILL_INTERVAL = 60;
/** Seconds before a failed write is tried again, by the Registry's alarm (`retry`). */
export const RETRY_AFTER = 2;
/** Storage key prefix marking a KV key whose last write failed. */
const DIRTY = "cache-dirty:";

/**
 * The Registry's write-through to the KV cache (CLIENT_CACHE). Every write of a key goes through here,
 * one at a time per key, and each writes what storage holds when it runs, not what its caller saw. So a
 * fill for a cache miss can never land after a later change and bring back an old or deleted record:
 * the change's own write runs after it and writes the truth again. (A fill made by the Worker that
 * missed could: it would put what it read, whenever its put arrived.) A write that fails (KV refuses a
 * second write to a key within a second, among other things) is marked in storage and made again by the
 * alarm RETRY_AFTER seconds later, so the change it follows still succeeds and KV catches up.
 */
export class RegistryCache {
  readonly #tails = new Map<CacheKey, Promise<void>>();
  readonly #written = new Map<CacheKey, number>();

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly kv: KVNamespace,
    /** Makes sure the alarm runs by `at` (seconds). */
    private readonly alarmBy: (at: number) => Promise<void>,
  ) {}

  /**
   * After a change: makes KV hold storage's current value for `key` (nothing, if it has none). Never
   * fails for a failed KV write: that is marked and retried (`retry`).
   */
  publish(key: CacheKey): Promise<void> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(() =>
      this.write(key).catch(async (error: unknown) => {
        await this.storage.put(`${DIRTY}${key}`, now());
        await this.alarmBy(now() + RETRY_AFTER);
        log("warn", "cache_write_failed", { key, error: String(error) });
      }),
    );
    const tail = run.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return run;
  }

  /** A miss on the hot path: the value, and KV filled with it unless a write is under way or was just made. */
  async fill(key: CacheKey): Promise<unknown> {
    const value = await truth(this.storage, key);
    const recent = now() - (this.#written.get(key) ?? 0) < FILL_INTERVAL;
    if (value !== null && !this.#tails.has(key) && !recent) await this.publish(key);
    return value;
  }

  /** The alarm's part: writes again every key whose last write failed (a failure marks it again). */
  async retry(): Promise<void> {
    const dirty = await this.storage.list({ prefix: DIRTY });
    for (const marker of dirty.keys()) await this.publish(marker.slice(DIRTY.length) as CacheKey);
  }

  private async write(key: CacheKey): Promise<void> {
    const value = await truth(this.storage, key);
    const stored = await kvKey(key);
    if (value === null) await this.kv.delete(stored);
    else await this.kv.put(stored, JSON.stringify(value));
    await this.storage.delete(`${DIRTY}${key}`);
    if (this.#written.size >= 10_000) this.#written.clear();
    this.#written.set(key, now());
  }
}

/** What KV should hold under `key`, from storage now; null when there is nothing. */
async function truth(storage: DurableObjectStorage, key: CacheKey): Promise<unknown> {
  if (key === "attesters") return listAttesterRecords(storage);
  if (key.startsWith("client:")) return (await storage.get<Client>(key)) ?? null;
  // Storage maps `resource-uri:{uri}` to the resource's id; KV holds the resource itself under that key.
  const id = await storage.get<string>(key);
  return id ? ((await storage.get<Resource>(`resource:${id}`)) ?? null) : null;
}
