import { DurableObject } from "cloudflare:workers";
import type { Approval, ApprovalRequest, ApprovalState, ApprovalView, PushSubscriptionRecord } from "../schemas/approval";
import { now as clock } from "../workers/clock";
import { sha256 } from "../workers/crypto";
import { reqKey, type Stored, strip, view } from "./approval-records";
import { SESSION_UNTIL_HEADER, sessionLasts } from "./inbox-sockets";
import { type Channel, type OutboxEntry, type OutboxEvent, outboxKey } from "./outbox";
import { attemptDelivery } from "./outbox-delivery";

/**
 * ApprovalQueue: one per approving user (`idFromName("user:" + sub)`) for CIBA requests, and one per
 * live device user code (`idFromName("device:" + code)`) for RFC 8628 requests, which have no user
 * until someone enters the code. Each request is a small state machine:
 *
 *            enqueue              approve (once)             poll / push delivery (once)
 *   (none) ─────────► pending ─────────────────► approved ───────────────────────────► redeemed
 *                        │ deny (once)              │ ▲          release (issuing failed)    │
 *                        ├──────────► denied        │ └──────────────────────────────────────┘
 *                        └─ expires_at (alarm) ─► expired ◄── expires_at passes (alarm)
 *
 * Terminal records stay until PURGE_AFTER past their expiry, so a late poll still gets the right error.
 * Every transition is one method that reads and writes through the synchronous storage API with no
 * await in between, so two calls can never interleave inside one; a decision and the outbox entries
 * announcing it are written in one transaction. The alarm expires requests, delivers the outbox
 * (`outbox-delivery.ts`; `outbox.ts`: backoff, never twice for one decision) and purges. The inbox connects by WebSocket
 * (hibernating: `ctx.acceptWebSocket`); every change is broadcast to it.
 */

/** Most pending requests one user may have waiting for one client (CIBA §7.1 rate limit per user). */
export const MAX_PENDING_PER_CLIENT = 10;
/** Most pending requests one user may have waiting in all, whichever clients ask. */
export const MAX_PENDING = 50;
/** Web Push subscriptions one user keeps (one per browser or device). */
export const MAX_SUBSCRIPTIONS = 10;
/** Outbox entries sent at once by one alarm run (each send may wait up to its timeout). */
const DELIVERIES_AT_ONCE = 8;
/** How long a finished request is remembered after its expiry, for polls that arrive late. */
const PURGE_AFTER = 600;
/** Device user code entry: failures allowed per window before the user must wait (RFC 8628 §5.1). */
export const CODE_FAILURES_ALLOWED = 5;
const CODE_WINDOW = 900;

export type EnqueueResult = { ok: true } | { ok: false; reason: "exists" | "queue_full" };
export type DecideResult = { ok: true; request: ApprovalRequest } | { ok: false; reason: "unknown" | "not_pending" | "expired" | "wrong_user" };
export type PollResult =
  | { ok: true; request: ApprovalRequest; approval: Approval }
  | { ok: false; reason: "unknown" | "client_mismatch" | "pending" | "expired" | "denied" | "redeemed" }
  | { ok: false; reason: "slow_down"; interval: number };

export class ApprovalQueue extends DurableObject<Env> {
  // ── transitions ─────────────────────────────────────────────────────────────────────────────

  /** (none) → pending. Queues a notification to each of the user's Web Push subscriptions and their webhook. */
  async enqueue(request: ApprovalRequest): Promise<EnqueueResult> {
    // Hash first: between the check and the write below there must be nothing but storage calls.
    const channels: Channel[] = await Promise.all(this.subscriptions().map(async (s) => `webpush:${await sha256(s.endpoint)}` as const));
    if (this.kv.get<string>("webhook")) channels.push("webhook");
    const all = this.requests();
    // A device request's queue is named by its user code, which must name exactly one request.
    const taken = request.kind === "device" ? all.length > 0 : all.some((r) => r.id === request.id || r.handle_hash === request.handle_hash);
    if (taken) return { ok: false, reason: "exists" };
    const waiting = all.filter((r) => r.state === "pending");
    if (waiting.length >= MAX_PENDING || waiting.filter((r) => r.client_id === request.client_id).length >= MAX_PENDING_PER_CLIENT) {
      return { ok: false, reason: "queue_full" };
    }
    const seq = (this.kv.get<number>("seq") ?? 0) + 1;
    const writes: Record<string, unknown> = { seq, [reqKey(request.id)]: { ...request, state: "pending", seq } satisfies Stored };
    for (const channel of channels) Object.assign(writes, this.entry(request.id, channel, "created", request.created_at));
    this.write(writes);
    await this.changed();
    return { ok: true };
  }

  /** pending → approved, by the user the request is for (any signed-in user for a device code). */
  async approve(input: { id: string; approval: Approval; now: number }): Promise<DecideResult> {
    return this.decide(input.id, input.approval.sub, input.now, "approved", input.approval);
  }

  /** pending → denied. */
  async deny(input: { id: string; sub: string; now: number }): Promise<DecideResult> {
    return this.decide(input.id, input.sub, input.now, "denied");
  }

  /**
   * The token endpoint's poll (CIBA §10.1, RFC 8628 §3.4): approved → redeemed exactly once; otherwise
   * why not. Polling faster than `interval` is `slow_down` and adds 5 s to it (RFC 8628 §3.5).
   */
  async poll(input: { handle_hash: string; client_id: string; now: number }): Promise<PollResult> {
    const r = this.requests().find((x) => x.handle_hash === input.handle_hash);
    if (!r) return { ok: false, reason: "unknown" };
    // CIBA §10.1: the auth_req_id must have been issued to the client that presents it.
    if (r.client_id !== input.client_id) return { ok: false, reason: "client_mismatch" };
    if (r.state === "denied") return { ok: false, reason: r.state };
    const tooSoon = r.last_polled_at !== undefined && input.now - r.last_polled_at < r.interval;
    // A poll that comes while another poll's redemption may still be issuing (within its interval) is told to
    // slow down, not that the request is used up: should that issue fail, the approval is released for the next poll.
    if (r.state === "redeemed" && !tooSoon) return { ok: false, reason: r.state };
    if (r.state === "expired" || input.now >= r.expires_at) return { ok: false, reason: "expired" };
    r.last_polled_at = input.now;
    if (tooSoon) r.interval += 5;
    if (r.state === "pending" || tooSoon) {
      this.kv.put(reqKey(r.id), r);
      return tooSoon ? { ok: false, reason: "slow_down", interval: r.interval } : { ok: false, reason: "pending" };
    }
    r.state = "redeemed";
    this.kv.put(reqKey(r.id), r);
    await this.changed();
    return { ok: true, request: strip(r), approval: r.approval as Approval };
  }

  /**
   * redeemed → approved: the token endpoint redeemed this request by a poll but could not issue (a
   * refused `resource`, a failed write), so nothing was issued and the user's approval must not be lost.
   * The next poll may come at once: the failed one does not count towards `slow_down`.
   */
  async release(input: { handle_hash: string; client_id: string }): Promise<{ ok: true } | { ok: false; reason: "unknown" | "not_redeemed" }> {
    const r = this.requests().find((x) => x.handle_hash === input.handle_hash && x.client_id === input.client_id);
    if (!r) return { ok: false, reason: "unknown" };
    // A push-mode request is redeemed by its delivery (`attempt`), never by a poll.
    if (r.state !== "redeemed" || r.delivery === "push") return { ok: false, reason: "not_redeemed" };
    r.state = "approved";
    delete r.last_polled_at;
    this.kv.put(reqKey(r.id), r);
    await this.changed();
    return { ok: true };
  }

  // ── reads ───────────────────────────────────────────────────────────────────────────────────

  /** The pending requests, oldest first, as the inbox shows them. */
  async pending(input: { now: number }): Promise<ApprovalView[]> {
    return this.requests()
      .filter((r) => r.state === "pending" && r.expires_at > input.now)
      .map(view);
  }

  /** One request's state, for tests and the device page. */
  async find(input: { id?: string }): Promise<(ApprovalView & { state: ApprovalState }) | null> {
    const r = this.requests().find((x) => input.id === undefined || x.id === input.id);
    return r ? { ...view(r), state: r.state } : null;
  }

  /** The outbox, for tests and operators. */
  async outbox(): Promise<OutboxEntry[]> {
    return [...this.kv.list<OutboxEntry>({ prefix: "outbox:" })].map(([, e]) => e);
  }

  // ── the user's Web Push subscriptions and device-code attempts ──────────────────────────────

  /**
   * Adds a Web Push subscription. A user keeps at most MAX_SUBSCRIPTIONS: the oldest gives way, so one request
   * can never fan out into more than that many notifications (to whatever hosts the endpoints name).
   */
  async subscribe(input: PushSubscriptionRecord): Promise<{ ok: true }> {
    const key = `push:${await sha256(input.endpoint)}`;
    this.ctx.storage.transactionSync(() => {
      const others = [...this.kv.list<PushSubscriptionRecord>({ prefix: "push:" })].filter(([k]) => k !== key);
      others.sort(([, a], [, b]) => a.created_at - b.created_at);
      for (const [k] of others.slice(0, Math.max(0, others.length - (MAX_SUBSCRIPTIONS - 1)))) this.kv.delete(k);
      this.kv.put(key, input);
    });
    return { ok: true };
  }

  /** The user signed out everywhere: live inbox pages are closed, and no browser is notified any more. */
  async signedOutEverywhere(): Promise<{ ok: true }> {
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.close(4001, "signed out");
      } catch {
        // Already closing.
      }
    }
    this.ctx.storage.transactionSync(() => {
      for (const [key] of this.kv.list({ prefix: "push:" })) this.kv.delete(key);
    });
    return { ok: true };
  }

  async unsubscribe(input: { endpoint: string }): Promise<{ ok: true }> {
    const key = `push:${await sha256(input.endpoint)}`;
    this.kv.delete(key);
    return { ok: true };
  }

  /** The user's webhook URL for signed notifications (RFC 9421), or none. */
  async setWebhook(input: { url: string | null }): Promise<{ ok: true }> {
    if (input.url) this.kv.put("webhook", input.url);
    else this.kv.delete("webhook");
    return { ok: true };
  }

  async webhook(): Promise<string | null> {
    return this.kv.get<string>("webhook") ?? null;
  }

  /**
   * RFC 8628 §5.1: an attempt at a user code counts as failed before the code is looked up, so guesses
   * sent at once all count; CODE_FAILURES_ALLOWED in CODE_WINDOW, then the user waits. `succeeded` takes
   * back the count of an attempt (by its time) whose code turned out right.
   */
  async codeAttempt(input: { now: number; succeeded?: number }): Promise<{ ok: true } | { ok: false; retry_after: number }> {
    const recent = (this.kv.get<number[]>("code-failures") ?? []).filter((t) => input.now - t < CODE_WINDOW);
    if (input.succeeded !== undefined) {
      const i = recent.indexOf(input.succeeded);
      if (i >= 0) recent.splice(i, 1);
      this.kv.put("code-failures", recent);
      return { ok: true };
    }
    if (recent.length >= CODE_FAILURES_ALLOWED) return { ok: false, retry_after: (recent[0] as number) + CODE_WINDOW - input.now };
    recent.push(input.now);
    this.kv.put("code-failures", recent);
    return { ok: true };
  }

  // ── the inbox WebSocket (hibernating) ───────────────────────────────────────────────────────

  /**
   * Accepts the inbox's WebSocket (the Worker checked the session and the Origin, and says until when the
   * session lasts: SESSION_UNTIL_HEADER) and sends the list. The socket is closed once the session is over.
   */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ until: Number(request.headers.get(SESSION_UNTIL_HEADER)) || clock() });
    server.send(JSON.stringify({ type: "pending", requests: await this.pending({ now: clock() }) }));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** The page may ask for the list again (after a reconnect); anything else is ignored. */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (!sessionLasts(ws)) return;
    if (message === "refresh") ws.send(JSON.stringify({ type: "pending", requests: await this.pending({ now: clock() }) }));
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    try {
      ws.close(1000, "closing");
    } catch {
      // Already closed from this side.
    }
  }

  // ── the alarm: expiry, outbox delivery, purge ───────────────────────────────────────────────

  override async alarm(): Promise<void> {
    const now = clock();
    let changed = false;
    for (const r of this.requests()) {
      if ((r.state === "pending" || r.state === "approved") && now >= r.expires_at) {
        const writes: Record<string, unknown> = { [reqKey(r.id)]: { ...r, state: "expired" } };
        // A pending request's client hears of the expiry (CIBA §10.3.1 push error expired_token; a ping to poll it).
        if (r.state === "pending" && r.delivery !== "poll") Object.assign(writes, this.entry(r.id, "client", "expired", now));
        this.write(writes);
        changed = true;
      }
    }
    if (changed) await this.changed();
    // The user's own channels first, then clients' endpoints, a few at a time: one slow endpoint holds up no other.
    const due = (await this.outbox()).filter((e) => e.status === "queued" && e.next_at <= now);
    due.sort((a, b) => Number(a.channel === "client") - Number(b.channel === "client"));
    for (let i = 0; i < due.length; i += DELIVERIES_AT_ONCE)
      await Promise.all(due.slice(i, i + DELIVERIES_AT_ONCE).map((e) => attemptDelivery(this.kv, this.env, e, now)));
    for (const r of this.requests()) {
      const finished = r.state !== "pending" && r.state !== "approved" && now >= r.expires_at + PURGE_AFTER;
      const entries = (await this.outbox()).filter((e) => e.request_id === r.id);
      if (finished && entries.every((e) => e.status !== "queued")) {
        this.ctx.storage.transactionSync(() => {
          for (const key of [reqKey(r.id), ...entries.map((e) => outboxKey(e.request_id, e.channel))]) this.kv.delete(key);
        });
      }
    }
    // A queue left with no request keeps no counter either (a device code's queue is then empty).
    if (this.requests().length === 0) this.kv.delete("seq");
    await this.schedule();
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────

  private async decide(id: string, sub: string, now: number, to: "approved" | "denied", approval?: Approval): Promise<DecideResult> {
    const r = this.kv.get<Stored>(reqKey(id));
    if (!r) return { ok: false, reason: "unknown" };
    if (r.sub !== undefined && r.sub !== sub) return { ok: false, reason: "wrong_user" };
    if (r.state !== "pending") return { ok: false, reason: r.state === "expired" ? "expired" : "not_pending" };
    if (now >= r.expires_at) return { ok: false, reason: "expired" };
    const next: Stored = { ...r, state: to, decided_at: now, sub, ...(approval ? { approval } : {}) };
    const writes: Record<string, unknown> = { [reqKey(id)]: next };
    if (r.delivery !== "poll") Object.assign(writes, this.entry(id, "client", to, now));
    this.write(writes);
    await this.changed();
    return { ok: true, request: strip(next) };
  }

  /** A fresh outbox entry as a storage write, due now. */
  private entry(requestId: string, channel: Channel, event: OutboxEvent, now: number): Record<string, OutboxEntry> {
    return { [outboxKey(requestId, channel)]: { request_id: requestId, channel, event, status: "queued", attempts: 0, next_at: now } };
  }

  /** The synchronous storage API: a transition reads and writes with no await in between, so it is atomic. */
  private get kv(): SyncKvStorage {
    return this.ctx.storage.kv;
  }

  /** Several keys in one transaction: a decision and the outbox entries announcing it land together. */
  private write(entries: Record<string, unknown>): void {
    this.ctx.storage.transactionSync(() => {
      for (const [key, value] of Object.entries(entries)) this.kv.put(key, value);
    });
  }

  private requests(): Stored[] {
    const all = [...this.kv.list<Stored>({ prefix: "req:" })].map(([, r]) => r);
    return all.sort((a, b) => a.seq - b.seq);
  }

  private subscriptions(): PushSubscriptionRecord[] {
    return [...this.kv.list<PushSubscriptionRecord>({ prefix: "push:" })].map(([, s]) => s);
  }

  /** After every change: tell the inbox, and set the alarm for whatever is due next. */
  private async changed(): Promise<void> {
    const message = JSON.stringify({ type: "pending", requests: await this.pending({ now: clock() }) });
    for (const ws of this.ctx.getWebSockets()) {
      if (!sessionLasts(ws)) continue;
      try {
        ws.send(message);
      } catch {
        // A socket that is closing misses this update; the page asks again when it reconnects.
      }
    }
    await this.schedule();
  }

  private async schedule(): Promise<void> {
    const due: number[] = [];
    const queued = (await this.outbox()).filter((e) => e.status === "queued");
    for (const e of queued) due.push(e.next_at);
    for (const r of this.requests()) {
      if (r.state === "pending" || r.state === "approved") due.push(r.expires_at);
      // A finished request is purged once its deliveries are done: while one waits, its next_at is the time to look.
      else if (!queued.some((e) => e.request_id === r.id)) due.push(r.expires_at + PURGE_AFTER);
    }
    if (due.length === 0) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.min(...due) * 1000);
  }
}
